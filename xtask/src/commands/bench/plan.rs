//! What one bench run measures: its phases and options, and the one
//! summary of noisy runs every phase gives (the median).

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    Resolve,
    Build,
    Options,
    Footprint,
    Runtime,
    Profile,
}

pub struct Options {
    pub arch: String,
    pub only: Option<Phase>,
    pub runs: usize,
    /// Cold builds with these job counts.
    pub cold_jobs: Vec<usize>,
    /// The Debian suite whose Python is the yardstick.
    pub suite: String,
    /// Build-option variants of the interpreter to build and run: `default`
    /// or manifest features joined by `+`.
    pub variants: Vec<String>,
    /// The toolchain of the variants' builds (`build --toolchain`); zig when none.
    pub toolchain: Option<String>,
}

/// The middle of the runs (the mean of the middle two for an even count).
pub(super) fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}
