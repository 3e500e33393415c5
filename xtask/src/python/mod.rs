//! Python packages for the target, crossenv-style (`crosspip`): wheels
//! resolved and downloaded for the target's platform, sdists built in a
//! crossenv, installed into the tree with pip itself. The rootfs task uses
//! it; the ad-hoc `pip` command is in `commands`. It may import `machine`,
//! `sources`, `model` and `base`, and stands beside `classes`: neither
//! imports the other. `import_check` imports what was installed on the
//! target before an install counts.

pub mod crosspip;
pub mod import_check;
