//! Sources: BitBake's `do_fetch` and `do_unpack`, and Debian's binary
//! packages. It may import `model` and `base`.
//!
//! - `mirror`: this host's Debian mirror, read from its apt configuration;
//! - `fetch`: a source into the download cache, verified by sha256
//!   (premirrors, upstream, mirrors);
//! - `unpack`: a source archive extracted into a fresh directory;
//! - `debian`: Debian's binary packages with their signature and checksums
//!   checked (board roots, the yardstick of `bench`).

pub mod debian;
pub mod fetch;
pub mod mirror;
pub mod unpack;
