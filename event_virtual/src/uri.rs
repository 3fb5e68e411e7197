//! The socket grammar: `virtual:MODE member member ...` (reference §4.7), without opening
//! anything. Members are whole sockets of other transports; one that contains spaces or tabs is
//! written in double quotes (OpenSIPS could not express those at all).

use std::fmt;

/// How a group delivers an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every member gets every event.
    Parallel,
    /// The first healthy member gets the event; on failure the next one.
    Failover,
    /// Members take turns; on failure the event moves to the next one.
    RoundRobin,
}

impl Mode {
    /// The keyword, as written in the URI.
    pub fn keyword(self) -> &'static str {
        match self {
            Mode::Parallel => "PARALLEL",
            Mode::Failover => "FAILOVER",
            Mode::RoundRobin => "ROUND-ROBIN",
        }
    }

    /// Exact, case-sensitive match: OpenSIPS prefix-compared, so `FAILOVERX` was FAILOVER.
    fn from_keyword(s: &str) -> Option<Mode> {
        [Mode::Parallel, Mode::Failover, Mode::RoundRobin]
            .into_iter()
            .find(|m| m.keyword() == s)
    }
}

/// A parsed `virtual:` body: the mode and the member sockets as written (unquoted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualUri {
    pub mode: Mode,
    pub members: Vec<String>,
}

const EXAMPLE: &str = "e.g. virtual:FAILOVER udp:10.0.0.1:9000 flatstore:/var/log/ev.log";

impl VirtualUri {
    /// Parse the body after `virtual:`. The error names the bad part.
    pub fn parse(body: &str) -> Result<VirtualUri, String> {
        let mut words = split(body)?.into_iter();
        let Some(mode) = words.next() else {
            return Err(format!(
                "needs a mode (PARALLEL, FAILOVER or ROUND-ROBIN) and members, {EXAMPLE}"
            ));
        };
        let mode = Mode::from_keyword(&mode).ok_or_else(|| {
            format!(
                "unknown mode {mode:?}: expected PARALLEL, FAILOVER or ROUND-ROBIN (exact, upper case)"
            )
        })?;
        let members: Vec<String> = words.collect();
        if members.is_empty() {
            return Err(format!(
                "empty member list after {}, {EXAMPLE}",
                mode.keyword()
            ));
        }
        for (i, m) in members.iter().enumerate() {
            if m.is_empty() {
                return Err(format!("member {} is empty (\"\")", i + 1));
            }
            let proto = m.split_once(':').map(|(p, _)| p);
            if proto == Some("virtual") {
                return Err(format!(
                    "member {} {m:?}: nested virtual sockets are not supported",
                    i + 1
                ));
            }
            if proto.is_none_or(str::is_empty) {
                return Err(format!(
                    "member {} {m:?} is not a socket (expected proto:...)",
                    i + 1
                ));
            }
        }
        Ok(VirtualUri { mode, members })
    }

    /// Same group: same mode and members; in the same order except for PARALLEL (OpenSIPS's
    /// rule), where order changes nothing.
    pub fn same_group(&self, other: &VirtualUri) -> bool {
        if self.mode != other.mode || self.members.len() != other.members.len() {
            return false;
        }
        if self.mode == Mode::Parallel {
            let mut a: Vec<&String> = self.members.iter().collect();
            let mut b: Vec<&String> = other.members.iter().collect();
            a.sort();
            b.sort();
            a == b
        } else {
            self.members == other.members
        }
    }
}

/// The print form, re-parseable: `MODE m1 m2`, members with blanks in double quotes.
impl fmt::Display for VirtualUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mode.keyword())?;
        for m in &self.members {
            if m.contains([' ', '\t']) {
                write!(f, " \"{m}\"")?;
            } else {
                write!(f, " {m}")?;
            }
        }
        Ok(())
    }
}

/// Split on runs of spaces/tabs; a word starting with `"` runs to the next `"`.
fn split(body: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut rest = body.trim_start_matches([' ', '\t']);
    while !rest.is_empty() {
        if let Some(q) = rest.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or_else(|| format!("unterminated quote in {rest:?}"))?;
            words.push(q[..end].to_string());
            rest = &q[end + 1..];
            if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
                return Err(format!(
                    "a quoted member must be followed by a space, not {rest:?}"
                ));
            }
        } else {
            let end = rest.find([' ', '\t']).unwrap_or(rest.len());
            words.push(rest[..end].to_string());
            rest = &rest[end..];
        }
        rest = rest.trim_start_matches([' ', '\t']);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> VirtualUri {
        VirtualUri::parse(body).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    fn err(body: &str) -> String {
        VirtualUri::parse(body).expect_err(body)
    }

    #[test]
    fn modes_members_and_blanks() {
        let u = ok("  FAILOVER\trabbitmq:127.0.0.1/q   flatstore:/tmp/x ");
        assert_eq!(u.mode, Mode::Failover);
        assert_eq!(u.members, ["rabbitmq:127.0.0.1/q", "flatstore:/tmp/x"]);
        assert_eq!(ok("PARALLEL udp:1.2.3.4:5").mode, Mode::Parallel);
        assert_eq!(ok("ROUND-ROBIN udp:1.2.3.4:5").mode, Mode::RoundRobin);
    }

    #[test]
    fn quoted_members_keep_their_spaces_and_print_back() {
        let u = ok(r#"PARALLEL "flatstore:/tmp/a b.log" udp:1.2.3.4:5 "unix:/tmp/s""#);
        assert_eq!(
            u.members,
            ["flatstore:/tmp/a b.log", "udp:1.2.3.4:5", "unix:/tmp/s"]
        );
        let printed = u.to_string();
        assert_eq!(
            printed,
            r#"PARALLEL "flatstore:/tmp/a b.log" udp:1.2.3.4:5 unix:/tmp/s"#
        );
        assert_eq!(ok(&printed), u);
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(err("").contains("needs a mode"));
        assert!(err("failover udp:1.2.3.4:5").contains("unknown mode \"failover\""));
        assert!(err("FAILOVERX udp:1.2.3.4:5").contains("unknown mode"));
        assert!(err("FAILOVER").contains("empty member list"));
        assert!(err("FAILOVER   \t ").contains("empty member list"));
        assert!(
            err("FAILOVER udp:1.2.3.4:5 virtual:PARALLEL udp:1.2.3.4:6").contains("nested virtual")
        );
        assert!(err("FAILOVER nocolon").contains("not a socket"));
        assert!(err("FAILOVER :x").contains("not a socket"));
        assert!(err(r#"FAILOVER "udp:1.2.3.4:5"#).contains("unterminated quote"));
        assert!(err(r#"FAILOVER "udp:1.2.3.4:5"x"#).contains("followed by a space"));
        assert!(err(r#"FAILOVER """#).contains("member 1 is empty"));
    }

    #[test]
    fn matching_follows_the_mode() {
        let a = ok("PARALLEL udp:1.1.1.1:1 udp:2.2.2.2:2");
        let b = ok("PARALLEL udp:2.2.2.2:2 udp:1.1.1.1:1");
        assert!(a.same_group(&b));
        let c = ok("FAILOVER udp:1.1.1.1:1 udp:2.2.2.2:2");
        let d = ok("FAILOVER udp:2.2.2.2:2 udp:1.1.1.1:1");
        assert!(!c.same_group(&d));
        assert!(c.same_group(&c.clone()));
        assert!(!a.same_group(&c));
        let e = ok("PARALLEL udp:1.1.1.1:1 udp:1.1.1.1:1");
        assert!(!a.same_group(&e));
    }
}
