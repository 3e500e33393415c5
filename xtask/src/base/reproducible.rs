//! The one time every output may carry: `SOURCE_DATE_EPOCH`
//! (reproducible-builds.org), or a fixed default. Compilers use it for
//! `__DATE__`/`__TIME__` (CPython's `sys.version`), OpenSSL for its "built
//! on" line, `package` for every mtime in the archive.

use anyhow::{Context, Result};

/// 2025-01-01T00:00:00Z.
const DEFAULT_EPOCH: u64 = 1_735_689_600;

pub fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.parse().with_context(|| format!("SOURCE_DATE_EPOCH={v} is not a number of seconds")),
        Err(_) => Ok(DEFAULT_EPOCH),
    }
}
