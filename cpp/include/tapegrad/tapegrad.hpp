// tapegrad: automatic differentiation on an arena tape. The one header to include.
#pragma once

#include "tapegrad/custom.hpp"
#include "tapegrad/dual.hpp"
#include "tapegrad/functional.hpp"
#include "tapegrad/leaf.hpp"
#include "tapegrad/op.hpp"
#include "tapegrad/optim.hpp"
#include "tapegrad/rules.hpp"
#include "tapegrad/sweep.hpp"
#include "tapegrad/tape.hpp"
#include "tapegrad/tensor.hpp"
#include "tapegrad/var.hpp"
#include "tapegrad/version.hpp"
