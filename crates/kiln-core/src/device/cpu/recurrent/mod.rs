//! The recurrent cells' per-step gate math.

pub(crate) mod cells;
