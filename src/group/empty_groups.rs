//! What both coordinators (classic and consumer-protocol) do alike with the groups they hold
//! once groups empty: deleting an empty group, telling offsets retention whether a group is
//! live (KIP-211), and forgetting empty groups that have nothing committed.

use std::collections::HashMap;

use kafka_protocol::ResponseError;

use super::coordinator::RetentionHold;

/// A group as the empty-group rules see it.
pub trait Membership {
    /// Its members.
    fn member_count(&self) -> usize;
    /// When it last became empty (ms since the epoch).
    fn empty_since_ms(&self) -> i64;
}

/// Forgets `group` if it is empty; NON_EMPTY_GROUP if it has members.
pub fn remove_empty<G: Membership>(
    groups: &mut HashMap<String, G>,
    group: &str,
) -> Result<(), ResponseError> {
    match groups.get(group) {
        Some(known) if known.member_count() > 0 => Err(ResponseError::NonEmptyGroup),
        Some(_) => {
            groups.remove(group);
            Ok(())
        }
        None => Ok(()),
    }
}

/// How offsets retention treats `group`.
pub fn retention_hold<G: Membership>(groups: &HashMap<String, G>, group: &str) -> RetentionHold {
    match groups.get(group) {
        Some(known) if known.member_count() > 0 => RetentionHold::Active,
        Some(known) => RetentionHold::EmptySince(known.empty_since_ms()),
        None => RetentionHold::Unknown,
    }
}

/// Forgets empty groups with no committed offsets (`has_offsets` says which have some).
pub fn forget_empty<G: Membership>(
    groups: &mut HashMap<String, G>,
    has_offsets: impl Fn(&str) -> bool,
) {
    groups.retain(|name, group| group.member_count() > 0 || has_offsets(name));
}
