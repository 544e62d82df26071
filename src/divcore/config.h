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

/* The kernels that are called from outside the templates (divcore._core, the public API,
 * the dispatch wrappers: the names of tools/kernel_table.py) are compiled as functions of
 * their own, never inlined into a caller nor specialised for its constant arguments.
 * Compilers fuse a*b + c into one FMA (-ffp-contract=fast, the AVX builds) wherever
 * they see both operations in one function, so a kernel inlined into different callers
 * can round differently; kept whole, it gives the same bits in divcore's Python API and
 * in any extension built with the same flags. The cost is one call per row (or per lane
 * group of short rows). Everything such a kernel calls is inlined into it, always
 * (DC_INLINE): left to the compiler's heuristics, which weigh the size of the whole
 * translation unit, the inlining (and with it the fusing) would differ between
 * divcore._core and an extension. `unused`: an includer need not call every kernel (not `inline`,
 * which GCC will not combine with noinline). */
#if defined(__GNUC__) || defined(__clang__)
#define DC_INLINE static inline __attribute__((always_inline))
#else
#define DC_INLINE static inline
#endif
#if defined(__GNUC__) && !defined(__clang__)
#define DC_ENTRY static __attribute__((noipa, unused))
#elif defined(__clang__)
#define DC_ENTRY static __attribute__((noinline, unused))
#else
#define DC_ENTRY static inline
#endif

#endif /* DIVCORE_CONFIG_H */
