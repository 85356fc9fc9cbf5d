//! The references of a run: one slot per entity the gate planned a reference for (one
//! slot for the whole prompt when it planned fewer than two), each with its selection,
//! which of its references is current, and whether it is used.

use iat2i_selectors::{Reference, Selection};

use crate::gate::EntityPlan;
use crate::generator::ReferenceRole;

/// One entity's reference (or the whole prompt's).
#[derive(Debug, Clone, Default)]
pub(super) struct Slot {
    /// The entity; `None` for the whole prompt.
    pub entity: Option<EntityPlan>,
    /// Its selection, once one succeeded.
    pub selection: Option<Selection>,
    /// Which reference is current: 0 the best, `i` the `i`-th alternate.
    pub index: usize,
    /// Whether the reference is sent (the judge may drop it).
    pub active: bool,
}

impl Slot {
    /// The slot of the whole prompt.
    pub fn whole() -> Slot {
        Slot {
            active: true,
            ..Slot::default()
        }
    }

    /// The slot of one planned entity.
    pub fn of(entity: EntityPlan) -> Slot {
        Slot {
            entity: Some(entity),
            ..Slot::whole()
        }
    }

    /// The entity's name, when the slot is an entity's.
    pub fn name(&self) -> Option<&str> {
        self.entity.as_ref().map(|e| e.name.as_str())
    }

    /// The role of its reference.
    pub fn role(&self) -> ReferenceRole {
        self.entity.as_ref().map(|e| e.role).unwrap_or_default()
    }

    /// The reference sent next, if any.
    pub fn current(&self) -> Option<&Reference> {
        if !self.active {
            return None;
        }
        let sel = self.selection.as_ref()?;
        match self.index {
            0 => Some(&sel.best),
            i => sel.alternates.get(i - 1),
        }
    }

    /// Whether another of its references can be tried.
    pub fn has_alternates(&self) -> bool {
        self.selection
            .as_ref()
            .is_some_and(|s| self.index < s.alternates.len())
    }

    /// Make `selection` current.
    pub fn set(&mut self, selection: Selection) {
        self.selection = Some(selection);
        self.index = 0;
        self.active = true;
    }

    /// Whether this slot is about `name` (case-insensitively).
    pub fn is(&self, name: &str) -> bool {
        self.name()
            .is_some_and(|n| n.eq_ignore_ascii_case(name.trim()))
    }
}

/// Move every later slot whose current reference is an earlier slot's to its next
/// alternate (a reference is one entity's, not two): returns a note per move.
pub(super) fn spread(slots: &mut [Slot]) -> Vec<String> {
    let mut notes = Vec::new();
    for j in 1..slots.len() {
        while let Some(url) = slots[j].current().map(|r| r.candidate.image_url.clone()) {
            let taken = slots[..j]
                .iter()
                .position(|s| s.current().is_some_and(|r| r.candidate.image_url == url));
            let Some(i) = taken else { break };
            let (this, other) = (
                slots[j].name().unwrap_or("the prompt").to_string(),
                slots[i].name().unwrap_or("the prompt").to_string(),
            );
            if slots[j].has_alternates() {
                slots[j].index += 1;
                notes.push(format!(
                    "{this}: its best image ({url}) is already {other}'s reference; its next \
                     alternate is used"
                ));
            } else {
                notes.push(format!(
                    "{this}: its only image ({url}) is also {other}'s reference; sent once"
                ));
                slots[j].active = false;
                break;
            }
        }
    }
    notes
}
