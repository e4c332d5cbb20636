// CheckReport: counts problems and keeps a bounded list of their messages.
#include <hypersdk/check.hpp>

#include <utility>

namespace hypersdk {

void CheckReport::add_note(std::string message) {
    if (messages.size() < max_messages) messages.push_back(std::move(message));
    else if (messages.size() == max_messages) messages.push_back("further problems not listed");
}

void CheckReport::add_corruption(std::string message) {
    ++corruptions;
    add_note(std::move(message));
}

void CheckReport::add_leak(std::string message) {
    ++leaks;
    add_note(std::move(message));
}

}  // namespace hypersdk
