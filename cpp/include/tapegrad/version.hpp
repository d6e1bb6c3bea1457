// The library version (tapegrad::version): the one place it is written. CMakeLists.txt's
// project() and the Python package's metadata (pyproject.toml) read it from here; the macros
// must agree with it (tests/test_version.py checks).
#pragma once

#define TAPEGRAD_VERSION_MAJOR 0
#define TAPEGRAD_VERSION_MINOR 1
#define TAPEGRAD_VERSION_PATCH 0

namespace tapegrad {
inline constexpr const char* version = "0.1.0";
}  // namespace tapegrad
