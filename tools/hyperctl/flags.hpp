// Command-line flags the way Go's "flag" package reads them, so hyperctl takes the spellings the Go
// hyperctl took (-vm PATH, -id=ID, -all): one or two dashes, the value as the next argument or after
// "=", booleans without a separate value (-all, -all=false). Parsing stops at the first argument
// that is not a flag, or after "--".
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace hyperctl {

// A mistake on the command line (exit status 2).
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// -h, -help or --help where no such flag is defined.
class HelpRequested : public std::exception {
public:
    const char *what() const noexcept override { return "help requested"; }
};

class FlagSet {
public:
    explicit FlagSet(std::string name) : name_(std::move(name)) {}

    void add_string(const std::string &name, std::string &target, std::string usage, std::string value_name = "string");
    void add_bool(const std::string &name, bool &target, std::string usage);

    // Sets the flags named in `args` and returns the arguments after them.
    std::vector<std::string> parse(const std::vector<std::string> &args);

    bool was_set(const std::string &name) const;

    // One entry per flag, as Go's PrintDefaults lays them out ("  -id string\n    \tusage").
    std::string describe() const;

    const std::string &name() const { return name_; }

private:
    struct Flag {
        std::string name;
        std::string usage;
        std::string value_name;
        std::string *text = nullptr;
        bool *boolean = nullptr;
    };

    Flag *find(const std::string &name);

    std::string name_;
    std::vector<Flag> flags_;
    std::vector<std::string> set_;
};

}  // namespace hyperctl
