//! The C2SP tlog-tiles layout of the tree's node hashes (<https://c2sp.org/tlog-tiles>).
//!
//! Tiles serve the tree as static files: the level-`L` tile with index `N` holds the hashes of the
//! Merkle nodes at level `8 * L` with indices `[N * 256, N * 256 + W)`, where the width `W` is 256
//! for a full tile and 1..=255 for the partial tile at the right edge. Every node at a level in
//! between is the root of a perfect subtree of `2^(level % 8)` consecutive hashes of one tile, so a
//! client that holds the tiles can compute any proof with the functions in this module and
//! [`super::ProofNodes`]. Everything here is arithmetic on positions; fetching is the caller's job.

use std::fmt::Write as _;

use super::hash::node_hash;
use super::node::NodeId;
use crate::types::{HASH_BYTES, Hash, TreeSize};

/// The number of Merkle levels one tile spans.
pub const TILE_HEIGHT: u8 = 8;

/// The number of hashes in a full tile, `2^TILE_HEIGHT`.
pub const TILE_HASHES_MAX: u16 = 1 << TILE_HEIGHT;

/// The highest tile level that can hold a hash: tile level `L` holds nodes of Merkle level
/// `8 * L`, and a tree of at most `u64::MAX` leaves has no node above level 63.
pub const TILE_LEVEL_MAX: u8 = super::node::NODE_LEVEL_MAX / TILE_HEIGHT;

/// Why a tile, tile path or tile body was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// No tile at this level can hold a node of a `u64`-sized tree.
    #[error("tile level {level} is above the highest level {TILE_LEVEL_MAX}")]
    LevelOutOfRange {
        /// The rejected level.
        level: u8,
    },
    /// The tile's first node would start beyond the last leaf a `u64`-sized tree can hold.
    #[error("tile index {index} at level {level} is beyond any u64-sized tree")]
    IndexOutOfRange {
        /// The tile level.
        level: u8,
        /// The rejected index.
        index: u64,
    },
    /// A tile width must be 1..=256 hashes.
    #[error("tile width {width} is not between 1 and {TILE_HASHES_MAX}")]
    WidthOutOfRange {
        /// The rejected width.
        width: u16,
    },
    /// The tile is narrower than the node needs.
    #[error("the node needs the first {needed} hashes of the tile, which has {got}")]
    TooFewHashes {
        /// The smallest width that holds the node.
        needed: u16,
        /// The number of hashes supplied.
        got: usize,
    },
    /// More hashes than a full tile holds.
    #[error("a tile holds at most {TILE_HASHES_MAX} hashes, got {got}")]
    TooManyHashes {
        /// The number of hashes supplied.
        got: usize,
    },
    /// A tile body is a non-empty concatenation of at most 256 hashes of 32 bytes.
    #[error(
        "a tile body of {len} bytes is not 1 to {TILE_HASHES_MAX} hashes of {HASH_BYTES} bytes"
    )]
    BodyLength {
        /// The length of the body.
        len: usize,
    },
}

/// A tile: level `L` holds the nodes of Merkle level `8 * L`, index `N` the 256 of them starting
/// at node index `N * 256`.
///
/// Invariant: `level <= TILE_LEVEL_MAX` and the first leaf under the tile fits in a `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    level: u8,
    index: u64,
}

impl TileId {
    /// Names the tile at `level`, `index`.
    ///
    /// # Errors
    /// [`TileError::LevelOutOfRange`] above [`TILE_LEVEL_MAX`]; [`TileError::IndexOutOfRange`]
    /// when the tile would start beyond the leaves of any `u64`-sized tree.
    pub fn new(level: u8, index: u64) -> Result<Self, TileError> {
        if level > TILE_LEVEL_MAX {
            return Err(TileError::LevelOutOfRange { level });
        }
        // The tile's first leaf is index * 2^(8 * (level + 1)); at the top level the shift is 64,
        // where only tile 0 starts inside the tree.
        let shift = u32::from(TILE_HEIGHT) * (u32::from(level) + 1);
        let fits = index
            .checked_shl(shift)
            .is_some_and(|first| first >> shift == index)
            || index == 0;
        if !fits {
            return Err(TileError::IndexOutOfRange { level, index });
        }
        Ok(TileId { level, index })
    }

    /// The tile level.
    pub const fn level(self) -> u8 {
        self.level
    }

    /// The index of the tile within its level.
    pub const fn index(self) -> u64 {
        self.index
    }

    /// The Merkle level of the hashes in this tile, `8 * level`.
    pub const fn node_level(self) -> u8 {
        self.level * TILE_HEIGHT
    }

    /// The tile's path under the log prefix: `tile/<L>/<N>`, with `.p/<W>` appended when
    /// `width < 256` (a partial tile).
    ///
    /// # Errors
    /// [`TileError::WidthOutOfRange`] unless `width` is 1..=256.
    pub fn path(self, width: u16) -> Result<String, TileError> {
        let mut path = format!("tile/{}/", self.level);
        push_index_and_width(&mut path, self.index, width)?;
        Ok(path)
    }
}

/// The path of entry bundle `index` (the entries under level-0 tile `index`) under the log
/// prefix: `tile/entries/<N>`, with `.p/<W>` appended when `width < 256`.
///
/// # Errors
/// [`TileError::WidthOutOfRange`] unless `width` is 1..=256.
pub fn entries_path(index: u64, width: u16) -> Result<String, TileError> {
    let mut path = String::from("tile/entries/");
    push_index_and_width(&mut path, index, width)?;
    Ok(path)
}

/// Appends `<N>[.p/<W>]`: the index as zero-padded groups of three digits, every group but the
/// last prefixed with `x` (1234067 is `x001/x234/067`), which keeps files and directories from
/// colliding when tiles are served straight from a file system.
fn push_index_and_width(path: &mut String, index: u64, width: u16) -> Result<(), TileError> {
    if width == 0 || width > TILE_HASHES_MAX {
        return Err(TileError::WidthOutOfRange { width });
    }
    let mut groups = Vec::new();
    let mut rest = index;
    loop {
        groups.push(rest % 1000);
        rest /= 1000;
        if rest == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    for (position, group) in groups.iter().rev().enumerate() {
        // Writing to a String cannot fail.
        let _ = if position < last {
            write!(path, "x{group:03}/")
        } else {
            write!(path, "{group:03}")
        };
    }
    if width < TILE_HASHES_MAX {
        let _ = write!(path, ".p/{width}");
    }
    Ok(())
}

/// The width of `tile` in the tree of `size` leaves: 256 when full, 1..=255 when partial, `None`
/// when the tree has no node in it yet (such a tile must not be served).
///
/// The tree has `size / 256^L` nodes at Merkle level `8 * L` (tlog-tiles: the partial tile has
/// `floor(size / 256^L) mod 256` hashes).
pub fn tile_width(tile: TileId, size: TreeSize) -> Option<u16> {
    let nodes = size.get() >> tile.node_level();
    // The invariant keeps the tile's first node index within range.
    let first = tile.index << TILE_HEIGHT;
    let width = nodes.checked_sub(first).filter(|&width| width > 0)?;
    // min(width, 256) fits in a u16.
    Some(width.min(u64::from(TILE_HASHES_MAX)) as u16)
}

/// Parses a tile body: the concatenated 32-byte hashes of 1 to 256 nodes.
///
/// # Errors
/// [`TileError::BodyLength`] when the body is empty, longer than a full tile or not a multiple
/// of 32 bytes.
pub fn tile_hashes_from_bytes(body: &[u8]) -> Result<Vec<Hash>, TileError> {
    let max_len = usize::from(TILE_HASHES_MAX) * HASH_BYTES;
    if body.is_empty() || body.len() > max_len || !body.len().is_multiple_of(HASH_BYTES) {
        return Err(TileError::BodyLength { len: body.len() });
    }
    Ok(body
        .chunks_exact(HASH_BYTES)
        .map(|chunk| {
            let mut bytes = [0; HASH_BYTES];
            bytes.copy_from_slice(chunk);
            Hash::from_bytes(bytes)
        })
        .collect())
}

/// Where a node's hash lives in the tiles: it is the root of the perfect subtree over the hashes
/// `[begin, end)` of `tile` (a single hash when the node's level is a multiple of 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileSpan {
    tile: TileId,
    begin: u16,
    end: u16,
}

impl TileSpan {
    /// Locates `node` in the tiles.
    ///
    /// A node at Merkle level `8 * L + r` covers `2^r` consecutive nodes of level `8 * L`; since
    /// `2^r` divides 256 they never straddle two tiles.
    pub fn for_node(node: NodeId) -> Self {
        let tile_level = node.level() / TILE_HEIGHT;
        let within = node.level() % TILE_HEIGHT;
        // The first covered node of level 8 * L; it fits because the node's first leaf does.
        let first = node.index() << within;
        let offset = first % u64::from(TILE_HASHES_MAX);
        // `offset < 256` and `2^within <= 128`, so both fit in a u16.
        let begin = offset as u16;
        let end = begin + (1u16 << within);
        TileSpan {
            tile: TileId {
                level: tile_level,
                index: first >> TILE_HEIGHT,
            },
            begin,
            end,
        }
    }

    /// The tile holding the node.
    pub const fn tile(&self) -> TileId {
        self.tile
    }

    /// The position in the tile of the first hash under the node.
    pub const fn begin(&self) -> u16 {
        self.begin
    }

    /// One past the position of the last hash under the node: also the smallest tile width that
    /// holds the node, so a partial tile of at least this width will do.
    pub const fn end(&self) -> u16 {
        self.end
    }

    /// The node's hash, computed from `tile_hashes`, the hashes of [`TileSpan::tile`] (of any
    /// width that holds the node).
    ///
    /// The hashes are trusted as given; a client checks a tile against a signed root by using
    /// the result in a proof.
    ///
    /// # Errors
    /// [`TileError::TooFewHashes`] when the tile is narrower than [`TileSpan::end`];
    /// [`TileError::TooManyHashes`] when it has more than 256 hashes.
    pub fn node_hash(&self, tile_hashes: &[Hash]) -> Result<Hash, TileError> {
        if tile_hashes.len() > usize::from(TILE_HASHES_MAX) {
            return Err(TileError::TooManyHashes {
                got: tile_hashes.len(),
            });
        }
        let Some(covered) = tile_hashes.get(usize::from(self.begin)..usize::from(self.end)) else {
            return Err(TileError::TooFewHashes {
                needed: self.end,
                got: tile_hashes.len(),
            });
        };
        // Hash the perfect subtree level by level in place; `covered` has a power-of-two length.
        let mut level = covered.to_vec();
        let mut len = level.len();
        while len > 1 {
            len /= 2;
            for i in 0..len {
                level[i] = node_hash(level[2 * i], level[2 * i + 1]);
            }
        }
        Ok(level[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(level: u8, index: u64) -> TileId {
        TileId::new(level, index).expect("valid tile")
    }

    #[test]
    fn tile_indices_are_split_into_three_digit_groups() {
        assert_eq!(tile(0, 0).path(256), Ok("tile/0/000".to_owned()));
        assert_eq!(tile(1, 7).path(256), Ok("tile/1/007".to_owned()));
        assert_eq!(tile(0, 1000).path(256), Ok("tile/0/x001/000".to_owned()));
        assert_eq!(
            tile(2, 1_234_067).path(256),
            Ok("tile/2/x001/x234/067".to_owned())
        );
    }

    #[test]
    fn partial_tiles_carry_their_width() {
        assert_eq!(tile(0, 273).path(112), Ok("tile/0/273.p/112".to_owned()));
        assert_eq!(
            entries_path(1_234_067, 1),
            Ok("tile/entries/x001/x234/067.p/1".to_owned())
        );
        assert_eq!(entries_path(5, 256), Ok("tile/entries/005".to_owned()));
    }

    #[test]
    fn widths_outside_one_to_256_are_refused() {
        assert_eq!(
            tile(0, 0).path(0),
            Err(TileError::WidthOutOfRange { width: 0 })
        );
        assert_eq!(
            entries_path(0, 257),
            Err(TileError::WidthOutOfRange { width: 257 })
        );
    }

    #[test]
    fn a_tree_of_70000_leaves_has_the_tiles_the_spec_lists() {
        // tlog-tiles: 273 full level-0 tiles, a partial one of width 112, one full level-1 tile,
        // a partial level-1 tile of width 17 and a partial level-2 tile of width 1.
        let size = TreeSize::new(70_000);
        assert_eq!(tile_width(tile(0, 272), size), Some(256));
        assert_eq!(tile_width(tile(0, 273), size), Some(112));
        assert_eq!(tile_width(tile(0, 274), size), None);
        assert_eq!(tile_width(tile(1, 0), size), Some(256));
        assert_eq!(tile_width(tile(1, 1), size), Some(17));
        assert_eq!(tile_width(tile(1, 2), size), None);
        assert_eq!(tile_width(tile(2, 0), size), Some(1));
        assert_eq!(tile_width(tile(3, 0), size), None);
    }

    #[test]
    fn a_tree_of_256_leaves_has_a_full_tile_and_a_partial_one_above() {
        let size = TreeSize::new(256);
        assert_eq!(tile_width(tile(0, 0), size), Some(256));
        assert_eq!(tile_width(tile(1, 0), size), Some(1));
        assert_eq!(tile_width(tile(0, 1), size), None);
    }

    #[test]
    fn tiles_beyond_a_u64_tree_are_refused() {
        assert_eq!(
            TileId::new(8, 0),
            Err(TileError::LevelOutOfRange { level: 8 })
        );
        assert!(TileId::new(7, 0).is_ok());
        assert_eq!(
            TileId::new(7, 1),
            Err(TileError::IndexOutOfRange { level: 7, index: 1 })
        );
        assert!(TileId::new(0, u64::MAX >> 8).is_ok());
        assert!(TileId::new(0, (u64::MAX >> 8) + 1).is_err());
    }

    #[test]
    fn a_node_between_tile_levels_spans_a_power_of_two_of_hashes() {
        // Level 11 = tile level 1 plus 3: 8 hashes of tile level 1.
        let span = TileSpan::for_node(NodeId::new(11, 33).expect("valid"));
        assert_eq!(span.tile(), tile(1, 1));
        assert_eq!((span.begin(), span.end()), (8, 16));
        // A node on a tile level is a single hash.
        let span = TileSpan::for_node(NodeId::new(8, 300).expect("valid"));
        assert_eq!(span.tile(), tile(1, 1));
        assert_eq!((span.begin(), span.end()), (44, 45));
    }

    #[test]
    fn a_node_hash_needs_a_wide_enough_tile() {
        let span = TileSpan::for_node(NodeId::new(2, 1).expect("valid"));
        assert_eq!(
            span.node_hash(&[Hash::ZERO; 7]),
            Err(TileError::TooFewHashes { needed: 8, got: 7 })
        );
        assert_eq!(
            span.node_hash(&[Hash::ZERO; 257]),
            Err(TileError::TooManyHashes { got: 257 })
        );
        let four = [1u8, 2, 3, 4].map(|b| Hash::from_bytes([b; HASH_BYTES]));
        let mut tile_hashes = vec![Hash::ZERO; 4];
        tile_hashes.extend(four);
        let want = node_hash(node_hash(four[0], four[1]), node_hash(four[2], four[3]));
        assert_eq!(span.node_hash(&tile_hashes), Ok(want));
    }

    #[test]
    fn tile_bodies_must_be_whole_hashes() {
        assert_eq!(
            tile_hashes_from_bytes(&[]),
            Err(TileError::BodyLength { len: 0 })
        );
        assert_eq!(
            tile_hashes_from_bytes(&[0; 33]),
            Err(TileError::BodyLength { len: 33 })
        );
        assert_eq!(
            tile_hashes_from_bytes(&[0; 257 * 32]),
            Err(TileError::BodyLength { len: 257 * 32 })
        );
        let body: Vec<u8> = (0..64).collect();
        let hashes = tile_hashes_from_bytes(&body).expect("two hashes");
        assert_eq!(hashes.len(), 2);
        assert_eq!(hashes[1].as_bytes()[0], 32);
    }
}
