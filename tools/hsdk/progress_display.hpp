// What hsdk draws on stderr while a job runs, and how other output gets past it.
//
// On a terminal: one bar line, redrawn in place and fitted to the terminal's width (TIOCGWINSZ,
// read again after SIGWINCH): phase, bar, percentage, bytes done / total, rate, ETA; parts are
// dropped from the right when the line would not fit. Elsewhere (a log file, a pipe): a plain line
// every few seconds and at each phase's end, as qemu-img -p does. Anything else printed while a bar
// is on screen (an error, a log line) starts on a line of its own.
#pragma once

#include <hypersdk/progress.hpp>

#include <string>

namespace hsdk {

// The -p display: a bar on a terminal, periodic plain lines elsewhere.
hypersdk::ProgressCallback progress_display();
// Without -p: the bar on a terminal; elsewhere one "hsdk: <phase>" line per phase.
hypersdk::ProgressCallback phase_display();

// Ends a bar line that is on screen, so the next output starts on a fresh line. Thread-safe.
void end_progress_line();

// The bar's text for a terminal `columns` wide (exposed for the tests of its layout).
std::string progress_bar_text(const hypersdk::ProgressInfo &p, int columns);
// The plain line printed when stderr is not a terminal.
std::string progress_plain_text(const hypersdk::ProgressInfo &p);

// Installs the SIGWINCH handler that makes the bar re-read the width.
void watch_terminal_width();

}  // namespace hsdk
