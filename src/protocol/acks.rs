//! The `acks` field of a Produce request: what the producer waits for. One type for the
//! broker, which decides when to answer, and the client, which sets it.

/// Acknowledgements a producer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// No response at all (`acks=0`).
    None,
    /// The leader appended it (`acks=1`).
    Leader,
    /// Durable by the broker's policy (`acks=all`, -1): every in-sync replica has it, which
    /// on one node means an fdatasync covers it under the `always` flush policy.
    All,
}

impl Acks {
    /// The wire value.
    pub fn wire(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Leader => 1,
            Self::All => -1,
        }
    }

    /// The value a request carries, or `None` for anything but -1, 0 and 1 (Kafka answers
    /// those with INVALID_REQUIRED_ACKS).
    pub fn from_wire(value: i16) -> Option<Self> {
        match value {
            0 => Some(Self::None),
            1 => Some(Self::Leader),
            -1 => Some(Self::All),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip_and_others_are_refused() {
        for acks in [Acks::None, Acks::Leader, Acks::All] {
            assert_eq!(Acks::from_wire(acks.wire()), Some(acks));
        }
        assert_eq!(Acks::from_wire(2), None);
        assert_eq!(Acks::from_wire(-2), None);
    }
}
