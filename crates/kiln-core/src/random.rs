//! A small seedable generator (xoshiro128++ seeded through splitmix64). Hand-written rather than
//! taken from `rand` because Kiln promises the same numbers for the same seed forever, on every
//! backend, and rand's streams may change between versions.

use std::sync::Mutex;

#[derive(Clone)]
pub struct Rng {
    s: [u32; 4],
}

static GLOBAL: Mutex<Option<Rng>> = Mutex::new(None);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        let (a, b) = (next(), next());
        Rng { s: [a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32] }
    }

    pub fn next_u32(&mut self) -> u32 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(7).wrapping_add(s[0]);
        let t = s[1] << 9;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(11);
        result
    }

    /// Uniform in [0, 1) with 24 random bits (every representable step of an f32 mantissa).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
    }

    /// Fills `out` with N(mean, std) by the Box-Muller transform.
    pub fn fill_normal(&mut self, out: &mut [f32], mean: f32, std: f32) {
        for pair in out.chunks_mut(2) {
            // 1 - u lies in (0, 1], so the log is finite.
            let u1 = 1.0 - self.uniform();
            let u2 = self.uniform();
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = std::f32::consts::TAU * u2;
            pair[0] = mean + std * r * theta.cos();
            if pair.len() > 1 {
                pair[1] = mean + std * r * theta.sin();
            }
        }
    }

    /// Uniform in [low, high): a draw that rounds up to `high` in f32 is redrawn.
    pub fn fill_uniform(&mut self, out: &mut [f32], low: f32, high: f32) {
        for v in out {
            *v = loop {
                let x = low + (high - low) * self.uniform();
                if x < high || high <= low {
                    break x.min(high);
                }
            };
        }
    }
}

/// Reseeds the process-wide generator used when an op is given no seed.
pub fn set_seed(seed: u64) {
    *GLOBAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(Rng::new(seed));
}

/// Runs `f` with the generator for this call: a fresh one for an explicit seed, else the global one.
pub fn with_rng<T>(seed: Option<u64>, f: impl FnOnce(&mut Rng) -> T) -> T {
    match seed {
        Some(s) => f(&mut Rng::new(s)),
        None => {
            let mut guard = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
            f(guard.get_or_insert_with(|| Rng::new(0x4B49_4C4E)))
        }
    }
}
