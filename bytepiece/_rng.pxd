# cython: language_level=3
"""Random numbers of the compiled core: xoshiro256** seeded through splitmix64.

Each call (and each text of a batch) owns its state, so there is nothing to
share between threads. All inline: sampling draws once per lattice position
(linear domain) or once per edge (log domain), in nogil loops. Not NumPy's
generators: making a NumPy Generator per text takes about four times as long
as sampling a whole line here (benchmarks/README.md, "Hand-written code, and why").
"""
from libc.stdint cimport int64_t, uint64_t


cdef struct Rng:
    uint64_t s0, s1, s2, s3    # xoshiro256** state


cdef inline uint64_t splitmix64(uint64_t *x) noexcept nogil:
    x[0] += <uint64_t>0x9E3779B97F4A7C15
    cdef uint64_t z = x[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline uint64_t rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline void rng_seed(Rng *rng, uint64_t seed) noexcept nogil:
    cdef uint64_t x = seed
    rng.s0 = splitmix64(&x)
    rng.s1 = splitmix64(&x)
    rng.s2 = splitmix64(&x)
    rng.s3 = splitmix64(&x)


cdef inline uint64_t rng_next(Rng *rng) noexcept nogil:
    cdef uint64_t result = rotl(rng.s1 * 5, 7) * 9
    cdef uint64_t t = rng.s1 << 17
    rng.s2 ^= rng.s0
    rng.s3 ^= rng.s1
    rng.s1 ^= rng.s2
    rng.s0 ^= rng.s3
    rng.s2 ^= t
    rng.s3 = rotl(rng.s3, 45)
    return result


cdef inline double rng_uniform(Rng *rng) noexcept nogil:
    """A uniform double in [0, 1) with 53 random bits."""
    return <double>(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0)


cdef inline uint64_t text_seed(uint64_t seed, int64_t index) noexcept nogil:
    """The seed of text ``index`` of a batch: depends on (seed, index) only."""
    cdef uint64_t x = seed ^ (<uint64_t>index * <uint64_t>0xD1B54A32D192ED03)
    return splitmix64(&x)

