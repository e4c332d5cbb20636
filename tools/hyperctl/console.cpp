#include "console.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace hyperctl {

namespace {

struct ToneStyle {
    const char *label;    // between the padding spaces of the label block
    const char *label_sgr;
    const char *text_sgr;
};

// pterm's default theme: black on a coloured block, the message in the matching foreground.
ToneStyle style_of(Tone tone) {
    switch (tone) {
    case Tone::info: return {"INFO", "30;46", "96"};
    case Tone::success: return {"SUCCESS", "30;42", "32"};
    case Tone::warning: return {"WARNING", "30;43", "33"};
    case Tone::error: return {" ERROR ", "30;101", "91"};
    }
    return {"INFO", "30;46", "96"};
}

constexpr const char *header_sgr = "96";
constexpr const char *rule_sgr = "90";
constexpr const char *section_sgr = "1;33";

// Decodes one UTF-8 sequence at `i`, advancing it; an invalid byte reads as itself.
char32_t next_code_point(std::string_view s, std::size_t &i) {
    const auto byte = static_cast<unsigned char>(s[i]);
    int extra = 0;
    char32_t cp = byte;
    if (byte >= 0xF0 && byte <= 0xF4) {
        extra = 3;
        cp = byte & 0x07;
    } else if (byte >= 0xE0) {
        extra = 2;
        cp = byte & 0x0F;
    } else if (byte >= 0xC2 && byte <= 0xDF) {
        extra = 1;
        cp = byte & 0x1F;
    }
    if (extra == 0 || i + static_cast<std::size_t>(extra) >= s.size()) {
        ++i;
        return byte;
    }
    for (int k = 1; k <= extra; ++k) {
        const auto cont = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
        if ((cont & 0xC0) != 0x80) {
            ++i;
            return byte;
        }
        cp = (cp << 6) | (cont & 0x3F);
    }
    i += static_cast<std::size_t>(extra) + 1;
    return cp;
}

bool zero_width(char32_t cp) {
    return (cp >= 0x0300 && cp <= 0x036F) || cp == 0x200B || cp == 0x200C || cp == 0x200D ||
           (cp >= 0xFE00 && cp <= 0xFE0F) || (cp >= 0xE0100 && cp <= 0xE01EF);
}

// East Asian Wide / Fullwidth and emoji with emoji presentation (what go-runewidth counts as 2).
bool wide(char32_t cp) {
    struct Range {
        char32_t first, last;
    };
    static constexpr Range ranges[] = {
        {0x1100, 0x115F},   {0x231A, 0x231B},   {0x2329, 0x232A},   {0x23E9, 0x23EC},   {0x23F0, 0x23F0},
        {0x23F3, 0x23F3},   {0x25FD, 0x25FE},   {0x2614, 0x2615},   {0x2648, 0x2653},   {0x267F, 0x267F},
        {0x2693, 0x2693},   {0x26A1, 0x26A1},   {0x26AA, 0x26AB},   {0x26BD, 0x26BE},   {0x26C4, 0x26C5},
        {0x26CE, 0x26CE},   {0x26D4, 0x26D4},   {0x26EA, 0x26EA},   {0x26F2, 0x26F3},   {0x26F5, 0x26F5},
        {0x26FA, 0x26FA},   {0x26FD, 0x26FD},   {0x2705, 0x2705},   {0x270A, 0x270B},   {0x2728, 0x2728},
        {0x274C, 0x274C},   {0x274E, 0x274E},   {0x2753, 0x2755},   {0x2757, 0x2757},   {0x2795, 0x2797},
        {0x27B0, 0x27B0},   {0x27BF, 0x27BF},   {0x2B1B, 0x2B1C},   {0x2B50, 0x2B50},   {0x2B55, 0x2B55},
        {0x2E80, 0x303E},   {0x3041, 0x33FF},   {0x3400, 0x4DBF},   {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},
        {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},   {0xFE30, 0xFE4F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},
        {0x1F004, 0x1F004}, {0x1F0CF, 0x1F0CF}, {0x1F18E, 0x1F18E}, {0x1F191, 0x1F19A}, {0x1F200, 0x1F251},
        {0x1F300, 0x1F320}, {0x1F32D, 0x1F335}, {0x1F337, 0x1F37C}, {0x1F37E, 0x1F393}, {0x1F3A0, 0x1F3CA},
        {0x1F3CF, 0x1F3D3}, {0x1F3E0, 0x1F3F0}, {0x1F3F4, 0x1F3F4}, {0x1F3F8, 0x1F43E}, {0x1F440, 0x1F440},
        {0x1F442, 0x1F4FC}, {0x1F4FF, 0x1F53D}, {0x1F54B, 0x1F54E}, {0x1F550, 0x1F567}, {0x1F57A, 0x1F57A},
        {0x1F595, 0x1F596}, {0x1F5A4, 0x1F5A4}, {0x1F5FB, 0x1F64F}, {0x1F680, 0x1F6C5}, {0x1F6CC, 0x1F6CC},
        {0x1F6D0, 0x1F6D2}, {0x1F6D5, 0x1F6D7}, {0x1F6EB, 0x1F6EC}, {0x1F6F4, 0x1F6FC}, {0x1F7E0, 0x1F7EB},
        {0x1F90C, 0x1F93A}, {0x1F93C, 0x1F945}, {0x1F947, 0x1F9FF}, {0x1FA70, 0x1FAFF}, {0x20000, 0x3FFFD},
    };
    for (const auto &r : ranges) {
        if (cp < r.first) return false;
        if (cp <= r.last) return true;
    }
    return false;
}

std::string repeat(const std::string &piece, std::size_t times) {
    std::string out;
    out.reserve(piece.size() * times);
    for (std::size_t i = 0; i < times; ++i) out += piece;
    return out;
}

}  // namespace

std::size_t display_width(std::string_view text) {
    std::size_t width = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        if (text[i] == '\x1b' && i + 1 < text.size() && text[i + 1] == '[') {
            i += 2;
            while (i < text.size() && !(text[i] >= 0x40 && text[i] <= 0x7E)) ++i;
            if (i < text.size()) ++i;  // the final byte ("m")
            continue;
        }
        const char32_t cp = next_code_point(text, i);
        if (cp < 0x20 || zero_width(cp)) continue;
        width += wide(cp) ? 2 : 1;
    }
    return width;
}

Console Console::for_stream(std::FILE *stream) {
    bool color = isatty(fileno(stream)) == 1;
    if (const char *no_color = std::getenv("NO_COLOR"); no_color && *no_color) color = false;
    if (const char *term = std::getenv("TERM"); term && std::strcmp(term, "dumb") == 0) color = false;
    return Console(stream, color);
}

void Console::write(const std::string &text) {
    std::fwrite(text.data(), 1, text.size(), stream_);
}

std::string Console::paint(const std::string &text, const char *sgr) const {
    if (!color_ || text.empty()) return text;
    // A reset inside `text` (from a painted part of it) resumes this colour, as pterm's styles do.
    const std::string start = std::string("\x1b[") + sgr + "m";
    const std::string reset = "\x1b[0m";
    std::string out = start;
    std::size_t from = 0;
    for (std::size_t at; (at = text.find(reset, from)) != std::string::npos; from = at + reset.size())
        out += text.substr(from, at - from) + reset + start;
    out += text.substr(from);
    return out + reset;
}

std::string Console::status_word(const std::string &status) const {
    const char *sgr = "90";  // pending and anything unknown: gray
    if (status == "running") sgr = "96";
    else if (status == "completed") sgr = "32";
    else if (status == "failed") sgr = "31";
    else if (status == "cancelled") sgr = "33";
    return paint(status, sgr);
}

void Console::prefixed(Tone tone, const std::string &message) {
    const ToneStyle style = style_of(tone);
    write(paint(std::string(" ") + style.label + " ", style.label_sgr) + " " + paint(message, style.text_sgr) + "\n");
}

void Console::line(const std::string &text) {
    write(text + "\n");
}

void Console::section(const std::string &title) {
    write("\n# " + paint(title, section_sgr) + "\n\n");
}

void Console::table(const std::vector<std::vector<std::string>> &rows) {
    if (rows.empty()) return;
    std::vector<std::size_t> widths;
    for (const auto &row : rows) {
        if (widths.size() < row.size()) widths.resize(row.size(), 0);
        for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], display_width(row[c]));
    }

    // Cells left-aligned and padded to their column, " | " between them (the last one padded too).
    const std::string separator = paint(" | ", rule_sgr);
    std::vector<std::string> lines;
    std::size_t row_width = 0;
    for (std::size_t r = 0; r < rows.size(); ++r) {
        std::string text;
        for (std::size_t c = 0; c < rows[r].size(); ++c) {
            if (c > 0) text += separator;
            text += rows[r][c];
            text += std::string(widths[c] - display_width(rows[r][c]), ' ');
        }
        row_width = std::max(row_width, display_width(text));
        lines.push_back(r == 0 ? paint(text, header_sgr) : text);
    }
    lines.insert(lines.begin() + 1, paint(std::string(row_width, '-'), rule_sgr));

    // The box around it: a one-column margin inside "|" on both sides.
    std::size_t inner = 0;
    for (const auto &l : lines) inner = std::max(inner, display_width(l));
    std::string out = "┌" + repeat("─", inner + 2) + "┐\n";
    for (const auto &l : lines) out += "| " + l + std::string(inner - display_width(l), ' ') + " |\n";
    out += "└" + repeat("─", inner + 2) + "┘\n";
    write(out);
}

}  // namespace hyperctl
