// The library version (tapegrad::version), kept equal to the project version in CMakeLists.txt
// and pyproject.toml.
#pragma once

#define TAPEGRAD_VERSION_MAJOR 0
#define TAPEGRAD_VERSION_MINOR 1
#define TAPEGRAD_VERSION_PATCH 0

namespace tapegrad {
inline constexpr const char* version = "0.1.0";
}  // namespace tapegrad
