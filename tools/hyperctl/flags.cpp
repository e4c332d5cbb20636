#include "flags.hpp"

#include <algorithm>
#include <optional>

namespace hyperctl {

namespace {

// The spellings Go's strconv.ParseBool accepts.
std::optional<bool> parse_bool(const std::string &text) {
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (const char *word : yes)
        if (text == word) return true;
    for (const char *word : no)
        if (text == word) return false;
    return std::nullopt;
}

}  // namespace

void FlagSet::add_string(const std::string &name, std::string &target, std::string usage, std::string value_name) {
    flags_.push_back(Flag{name, std::move(usage), std::move(value_name), &target, nullptr});
}

void FlagSet::add_bool(const std::string &name, bool &target, std::string usage) {
    flags_.push_back(Flag{name, std::move(usage), {}, nullptr, &target});
}

FlagSet::Flag *FlagSet::find(const std::string &name) {
    for (auto &flag : flags_)
        if (flag.name == name) return &flag;
    return nullptr;
}

bool FlagSet::was_set(const std::string &name) const {
    return std::find(set_.begin(), set_.end(), name) != set_.end();
}

std::vector<std::string> FlagSet::parse(const std::vector<std::string> &args) {
    std::size_t i = 0;
    while (i < args.size()) {
        const std::string &arg = args[i];
        if (arg.size() < 2 || arg[0] != '-') break;  // "" , "-" and words end the flags
        if (arg == "--") {
            ++i;
            break;
        }
        std::size_t dashes = (arg[1] == '-') ? 2 : 1;
        std::string body = arg.substr(dashes);
        if (body.empty() || body[0] == '-' || body[0] == '=') throw UsageError("bad flag syntax: " + arg);
        ++i;

        std::optional<std::string> value;
        if (auto eq = body.find('='); eq != std::string::npos) {
            value = body.substr(eq + 1);
            body.resize(eq);
        }

        Flag *flag = find(body);
        if (!flag) {
            if (body == "h" || body == "help") throw HelpRequested{};
            throw UsageError("flag provided but not defined: -" + body);
        }
        if (flag->boolean) {
            if (!value) {
                *flag->boolean = true;
            } else if (auto parsed = parse_bool(*value)) {
                *flag->boolean = *parsed;
            } else {
                throw UsageError("invalid boolean value \"" + *value + "\" for -" + body);
            }
        } else {
            if (!value) {
                if (i >= args.size()) throw UsageError("flag needs an argument: -" + body);
                value = args[i++];
            }
            *flag->text = *value;
        }
        set_.push_back(body);
    }
    return {args.begin() + static_cast<std::ptrdiff_t>(i), args.end()};
}

std::string FlagSet::describe() const {
    std::string out;
    for (const auto &flag : flags_) {
        out += "  -" + flag.name;
        if (!flag.boolean) out += " " + flag.value_name;
        out += "\n    \t" + flag.usage + "\n";
    }
    return out;
}

}  // namespace hyperctl
