/* lp/fast.c built again with -mavx2 -mbmi -mbmi2 (lp/CMakeLists.txt adds the flags to this file
 * only, on x86-64): lp_fast_line_avx2(), which lp_fast_line() runs only when the CPU has AVX2,
 * BMI1 and BMI2. */
#define LP_FAST_AVX2 1
#include "lp/fast.c" /* NOLINT(bugprone-suspicious-include): the same code, another build */
