//! The ABI layout snapshot: every type's layout hash, and the ABI version, as checked in.
//!
//! Any change to an ABI type's layout (a field added, removed, reordered or retyped, a fn
//! pointer's signature changed) changes its hash. This test fails until the change is
//! acknowledged twice: by bumping the ABI version in `core/abi/src/lib.rs` (minor for an
//! append-only change to a table that carries its own size, major otherwise), and by
//! regenerating the snapshot:
//!
//! ```text
//! EVI_ABI_SNAPSHOT=update cargo test -p evi-abi --test layout_snapshot
//! ```
//!
//! and committing `core/abi/tests/layout.snapshot` with the change.

use evi_abi::{EVI_ABI_MAJOR, EVI_ABI_MINOR, TYPE_HASHES};
use std::collections::BTreeMap;
use std::path::Path;

const UPDATE: &str = "EVI_ABI_SNAPSHOT=update cargo test -p evi-abi --test layout_snapshot";

#[derive(Debug, PartialEq)]
struct Snapshot {
    major: u32,
    minor: u32,
    /// Type name → layout hash, in declaration order.
    types: Vec<(String, u64)>,
}

impl Snapshot {
    fn current() -> Snapshot {
        Snapshot {
            major: EVI_ABI_MAJOR,
            minor: EVI_ABI_MINOR,
            types: TYPE_HASHES
                .iter()
                .map(|t| {
                    // SAFETY: the names in TYPE_HASHES are 'static strings.
                    let name = String::from_utf8_lossy(unsafe { t.name.as_bytes() });
                    (name.into_owned(), t.hash)
                })
                .collect(),
        }
    }

    fn render(&self) -> String {
        let mut s = format!(
            "# evi-abi layout snapshot: the ABI version and each ABI type's layout hash.\n\
             # Checked by core/abi/tests/layout_snapshot.rs. After bumping the ABI version, regenerate:\n\
             #   {UPDATE}\n\
             abi {}.{}\n",
            self.major, self.minor
        );
        for (name, hash) in &self.types {
            s.push_str(&format!("{name} {hash:#018x}\n"));
        }
        s
    }

    fn parse(text: &str) -> Result<Snapshot, String> {
        let mut version = None;
        let mut types = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || format!("line {}: cannot read {line:?}", n + 1);
            let (key, value) = line.split_once(' ').ok_or_else(bad)?;
            if key == "abi" {
                let (ma, mi) = value.split_once('.').ok_or_else(bad)?;
                version = Some((
                    ma.parse().map_err(|_| bad())?,
                    mi.parse().map_err(|_| bad())?,
                ));
            } else {
                let hex = value.trim().trim_start_matches("0x");
                types.push((
                    key.to_string(),
                    u64::from_str_radix(hex, 16).map_err(|_| bad())?,
                ));
            }
        }
        let (major, minor) = version.ok_or("no `abi MAJOR.MINOR` line")?;
        Ok(Snapshot {
            major,
            minor,
            types,
        })
    }
}

/// What changed between the snapshot and this build, one line per type.
fn changes(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    let before: BTreeMap<_, _> = old.types.iter().cloned().collect();
    let after: BTreeMap<_, _> = new.types.iter().cloned().collect();
    let mut out = Vec::new();
    for (name, hash) in &new.types {
        match before.get(name) {
            None => out.push(format!("{name}: new type")),
            Some(h) if h != hash => out.push(format!(
                "{name}: layout changed ({h:#018x} -> {hash:#018x})"
            )),
            _ => {}
        }
    }
    for (name, _) in &old.types {
        if !after.contains_key(name) {
            out.push(format!("{name}: removed"));
        }
    }
    out
}

#[test]
fn abi_layout_matches_the_snapshot_or_the_version_was_bumped() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/layout.snapshot");
    let now = Snapshot::current();
    if std::env::var("EVI_ABI_SNAPSHOT").as_deref() == Ok("update") {
        std::fs::write(&path, now.render())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!("wrote {} (ABI {}.{})", path.display(), now.major, now.minor);
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\ncreate it with: {UPDATE}",
            path.display()
        )
    });
    let old = Snapshot::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if old == now {
        return;
    }
    let what = changes(&old, &now);
    let same_version = (old.major, old.minor) == (now.major, now.minor);
    if same_version && !what.is_empty() {
        panic!(
            "the ABI layout changed but the ABI version is still {}.{}:\n  {}\n\
             Bump the version in core/abi/src/lib.rs:\n  \
             - EVI_ABI_MINOR if you only appended fields to a table that carries its own size \
             (EviHost, EviTransport) or hung a new table off `ext` (older modules keep loading);\n  \
             - EVI_ABI_MAJOR (and set EVI_ABI_MINOR to 0) for anything else: a field removed, \
             reordered or retyped, a fn signature changed, a field added to a table without a size \
             (every module must be rebuilt).\n\
             Then regenerate the snapshot: {UPDATE}\n\
             (Before the first release the lead may regenerate without a bump; say so in the commit.)",
            now.major,
            now.minor,
            what.join("\n  ")
        );
    }
    panic!(
        "{} is stale (it says ABI {}.{}, this build is {}.{}{}).\nRegenerate it: {UPDATE}",
        path.display(),
        old.major,
        old.minor,
        now.major,
        now.minor,
        if what.is_empty() {
            String::new()
        } else {
            format!("; changed: {}", what.join(", "))
        }
    );
}

#[test]
fn snapshot_round_trips() {
    let now = Snapshot::current();
    assert_eq!(Snapshot::parse(&now.render()), Ok(now));
}

#[test]
fn a_changed_hash_is_reported_by_type() {
    let now = Snapshot::current();
    let mut old = Snapshot::parse(&now.render()).unwrap_or_else(|e| panic!("{e}"));
    old.types[0].1 ^= 1;
    old.types.push(("EviGone".into(), 1));
    let what = changes(&old, &now);
    assert_eq!(what.len(), 2, "{what:?}");
    assert!(what[0].starts_with(&format!("{}: layout changed", now.types[0].0)));
    assert_eq!(what[1], "EviGone: removed");
}
