//! A chunk's one result from its parts' outcomes (DESIGN §6): anything retryable → `FLB_RETRY`;
//! else `FLB_OK` (what was dropped for good is logged where it happens); `FLB_ERROR` only when
//! nothing of the chunk was accepted.

/// What a flush tells Fluent Bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushResult {
    Ok,
    Error,
    Retry,
}

/// Counts of a chunk's records by how they ended, across the chunk's attempts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub delivered: usize,
    pub rejected: usize,
    /// Some records are left to send again.
    pub retry: bool,
}

impl Tally {
    pub fn result(&self) -> FlushResult {
        if self.retry {
            FlushResult::Retry
        } else if self.rejected > 0 && self.delivered == 0 {
            FlushResult::Error
        } else {
            FlushResult::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_mixed_outcomes() {
        let t = |delivered, rejected, retry| {
            Tally {
                delivered,
                rejected,
                retry,
            }
            .result()
        };
        assert_eq!(t(0, 0, false), FlushResult::Ok, "empty chunk");
        assert_eq!(t(5, 0, false), FlushResult::Ok);
        assert_eq!(
            t(5, 2, false),
            FlushResult::Ok,
            "some accepted: drops logged"
        );
        assert_eq!(t(0, 2, false), FlushResult::Error, "nothing accepted");
        assert_eq!(t(5, 2, true), FlushResult::Retry, "anything retryable");
        assert_eq!(t(0, 2, true), FlushResult::Retry);
        assert_eq!(t(0, 0, true), FlushResult::Retry);
    }
}
