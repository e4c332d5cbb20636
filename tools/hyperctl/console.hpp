// Terminal output in the layout the Go hyperctl printed with pterm: prefixed lines (" INFO  ...",
// " SUCCESS  ..."), "# Title" sections and boxed tables with a "-" rule under the header. Colours
// only on a terminal (and not with NO_COLOR): piped output - what hyper2kvm reads - is plain text,
// so "  - Job ID: <id>" ends with the ID and nothing after it.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace hyperctl {

enum class Tone { info, success, warning, error };

class Console {
public:
    Console(std::FILE *stream, bool color) : stream_(stream), color_(color) {}

    // A console for `stream` with colours when it is a terminal, NO_COLOR is unset and TERM is not "dumb".
    static Console for_stream(std::FILE *stream);

    // " INFO  message", " SUCCESS  message", " WARNING  message", "  ERROR   message".
    void prefixed(Tone tone, const std::string &message);
    // A line of text (empty: a blank line).
    void line(const std::string &text = {});
    // A blank line, "# title", a blank line.
    void section(const std::string &title);
    // rows[0] is the header; every row has the same number of cells.
    void table(const std::vector<std::vector<std::string>> &rows);

    // `text` in the SGR colour `sgr` ("32") on a colour console, else unchanged.
    std::string paint(const std::string &text, const char *sgr) const;
    // A job status in the colour the Go hyperctl gave it (running cyan, completed green, ...).
    std::string status_word(const std::string &status) const;

    bool color() const { return color_; }

private:
    void write(const std::string &text);

    std::FILE *stream_;
    bool color_;
};

// Columns `text` takes on a terminal: ANSI escapes take none, emoji and East Asian wide characters two.
std::size_t display_width(std::string_view text);

}  // namespace hyperctl
