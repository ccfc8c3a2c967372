//! "Is this host EC2?" from local files only (no network): DMI `sys_vendor` or `bios_vendor`
//! "Amazon EC2", `board_asset_tag` "i-…", `product_uuid` or `/sys/hypervisor/uuid` starting
//! with `ec2` (any case; Xen-based instances).
//!
//! The files are read under a sysfs root: `/sys`, or the directory named by the environment
//! variable `FLB_SIGV4_SYS_ROOT` (tests point it at a fake tree).

use crate::aws::credentials::util::short_value;
use crate::env::Env;
use std::path::{Path, PathBuf};

/// Overrides the sysfs root (default `/sys`) that EC2 detection reads.
pub const SYS_ROOT_VAR: &str = "FLB_SIGV4_SYS_ROOT";

/// The sysfs root to read: `FLB_SIGV4_SYS_ROOT` or `/sys`.
pub fn sys_root(env: &Env) -> PathBuf {
    env.get(SYS_ROOT_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/sys"))
}

/// The verdict and the evidence, e.g. `/sys/class/dmi/id/sys_vendor is 'Amazon EC2'` or
/// `not EC2: /sys/class/dmi/id/sys_vendor is 'QEMU', …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Detection {
    pub is_ec2: bool,
    pub reason: String,
}

#[derive(Clone, Copy)]
enum Rule {
    Vendor,
    AssetTag,
    Uuid,
}

fn matches(rule: Rule, value: &str) -> bool {
    let v = value.trim();
    match rule {
        Rule::Vendor => v.eq_ignore_ascii_case("Amazon EC2"),
        Rule::AssetTag => v
            .strip_prefix("i-")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit())),
        Rule::Uuid => v.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("ec2")),
    }
}

/// Reads the DMI and hypervisor files under `sys_root`.
pub fn detect_ec2(sys_root: &Path) -> Ec2Detection {
    let files: [(&str, Rule); 5] = [
        ("class/dmi/id/sys_vendor", Rule::Vendor),
        ("class/dmi/id/bios_vendor", Rule::Vendor),
        ("class/dmi/id/board_asset_tag", Rule::AssetTag),
        ("class/dmi/id/product_uuid", Rule::Uuid),
        ("hypervisor/uuid", Rule::Uuid),
    ];
    let mut notes = Vec::new();
    for (rel, rule) in files {
        let path = sys_root.join(rel);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let value = String::from_utf8_lossy(&bytes);
                let shown = short_value(&value);
                if matches(rule, &value) {
                    return Ec2Detection {
                        is_ec2: true,
                        reason: format!("{} is '{shown}'", path.display()),
                    };
                }
                notes.push(format!("{} is '{shown}'", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                notes.push(format!("{} does not exist", path.display()))
            }
            Err(e) => notes.push(format!("{} is unreadable ({})", path.display(), e.kind())),
        }
    }
    Ec2Detection {
        is_ec2: false,
        reason: format!("not EC2: {}", notes.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::testutil::TempDir;

    fn tree(files: &[(&str, &str)]) -> TempDir {
        let dir = TempDir::new("ec2");
        for (rel, content) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, content).expect("write");
        }
        dir
    }

    #[test]
    fn each_file_form_detects_ec2() {
        for (rel, value) in [
            ("class/dmi/id/sys_vendor", "Amazon EC2\n"),
            ("class/dmi/id/bios_vendor", "Amazon EC2\n"),
            ("class/dmi/id/board_asset_tag", "i-0123456789abcdef0\n"),
            (
                "class/dmi/id/product_uuid",
                "EC2E1916-9099-7CAF-FD21-012345678901\n",
            ),
            ("hypervisor/uuid", "ec2e1916-9099-7caf-fd21-012345678901\n"),
        ] {
            let dir = tree(&[(rel, value)]);
            let d = detect_ec2(dir.path());
            assert!(d.is_ec2, "{rel}: {d:?}");
            assert!(d.reason.contains(rel), "{d:?}");
        }
    }

    #[test]
    fn non_ec2_values() {
        let dir = tree(&[
            ("class/dmi/id/sys_vendor", "QEMU\n"),
            ("class/dmi/id/bios_vendor", "SeaBIOS\n"),
            ("class/dmi/id/board_asset_tag", "i-not-hex\n"),
            (
                "class/dmi/id/product_uuid",
                "4c4c4544-0042-4b10-8053-b4c04f4a4e32\n",
            ),
        ]);
        let d = detect_ec2(dir.path());
        assert!(!d.is_ec2);
        assert!(d.reason.starts_with("not EC2: "), "{}", d.reason);
        assert!(d.reason.contains("sys_vendor is 'QEMU'"), "{}", d.reason);
        assert!(
            d.reason.contains("hypervisor/uuid does not exist"),
            "{}",
            d.reason
        );
        let empty = tree(&[]);
        assert!(!detect_ec2(empty.path()).is_ec2);
    }

    #[test]
    fn sys_root_knob() {
        assert_eq!(sys_root(&Env::default()), PathBuf::from("/sys"));
        assert_eq!(
            sys_root(&Env::from_pairs([(SYS_ROOT_VAR, "/tmp/x")])),
            PathBuf::from("/tmp/x")
        );
    }
}
