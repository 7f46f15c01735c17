//! Fused attention's CPU tiles (flash-attention style blocks, see tile.rs).

pub(crate) mod tile;
