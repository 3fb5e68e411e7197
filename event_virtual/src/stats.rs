//! Counters per group and per member, and their MI form (`event_virtual:stats`).

use evi_sdk::json::{json, Value};

/// One member of one group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberStats {
    /// Events the member reported delivered.
    pub delivered: u64,
    /// Events the member reported failed, refused at `socket_raise`, or left unanswered past
    /// `member_timeout`.
    pub failed: u64,
    /// Events moved from this member to another one (FAILOVER, ROUND-ROBIN), counted when
    /// the event is sent on: a failure with no member left to try is only in `failed`.
    pub failed_over: u64,
    /// Of `failed`: no answer within `member_timeout`.
    pub timeouts: u64,
    /// Answers that came after the event had been given up on this member: a late success
    /// may be a duplicate of the copy sent elsewhere.
    pub late_delivered: u64,
    pub late_failed: u64,
    pub last_error: Option<String>,
}

/// One group (one `virtual:` socket).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    pub raised: u64,
    pub delivered: u64,
    pub failed: u64,
}

impl MemberStats {
    pub fn json(&self, member: &str, state: &str, in_flight: usize) -> Value {
        json!({
            "member": member,
            "state": state,
            "in_flight": in_flight,
            "delivered": self.delivered,
            "failed": self.failed,
            "failed_over": self.failed_over,
            "timeouts": self.timeouts,
            "late_delivered": self.late_delivered,
            "late_failed": self.late_failed,
            "last_error": self.last_error,
        })
    }
}
