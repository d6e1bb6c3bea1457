// The C++ suite's main (doctest's).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#if defined(__SANITIZE_ADDRESS__)
// Under AddressSanitizer an impossible allocation must fail as it does in a release build
// (tapegrad turns it into its MemoryError), not abort the process.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }
#endif
