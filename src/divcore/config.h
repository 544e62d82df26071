/* divcore/config.h: what every divcore header needs to be true of the compiler.
 *
 * -ffast-math (and -Ofast, -ffinite-math-only) let the compiler assume that no value is
 * NaN or infinite. divcore's contract rests on exactly those values: -inf logits are
 * masked classes, a row holding a NaN must give NaN, and every kernel compares with
 * INFINITY and tests x != x. Under those flags the comparisons are folded away and the
 * kernels silently return wrong numbers (a CE of 0 for a confident prediction, a finite
 * loss for a row with NaN). So the headers refuse to compile there; compile the file that
 * includes them without those flags (they can stay on for the rest of a program). */
#ifndef DIVCORE_CONFIG_H
#define DIVCORE_CONFIG_H

#if defined(__FAST_MATH__)
#error "divcore: compiled with -ffast-math or -Ofast (__FAST_MATH__). divcore's kernels rely on IEEE infinities and NaN (-inf logits are masked classes, NaN rows must give NaN), which fast-math lets the compiler assume away: results would be silently wrong. Compile this file without -ffast-math / -Ofast."
#endif
#if defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__
#error "divcore: compiled with -ffinite-math-only (__FINITE_MATH_ONLY__). divcore's kernels rely on IEEE infinities and NaN (-inf logits are masked classes, NaN rows must give NaN), which this flag lets the compiler assume away: results would be silently wrong. Compile this file without it."
#endif

#endif /* DIVCORE_CONFIG_H */
