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
    /// A path under a log prefix that names no resource of the tlog-tiles layout (or names one
    /// in a non-canonical spelling, such as a superfluous leading `x000/` group).
    #[error("not a tile path: {0}")]
    Path(&'static str),
    /// An entry bundle is a sequence of big-endian uint16 length-prefixed entries.
    #[error("the entry bundle is truncated at byte {at}")]
    BundleTruncated {
        /// Where the truncated entry starts.
        at: usize,
    },
    /// A node a proof needs lies in a tile that the tree of this size does not have.
    #[error("tile {index} at level {level} is not part of the tree")]
    NotInTree {
        /// The tile level.
        level: u8,
        /// The tile index.
        index: u64,
    },
    /// A tile a node needs was not supplied.
    #[error("tile {index} at level {level} was not supplied")]
    TileMissing {
        /// The tile level.
        level: u8,
        /// The tile index.
        index: u64,
    },
    /// An entry longer than a uint16 length prefix can say.
    #[error("an entry of {len} bytes does not fit an entry bundle (at most 65535)")]
    EntryTooLong {
        /// Its length.
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

/// What a path under a log prefix names (C2SP tlog-tiles, plus Auditex's record bundles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileResource {
    /// `checkpoint`: the latest signed checkpoint.
    Checkpoint,
    /// `tile/<L>/<N>[.p/<W>]`: `width` hashes of `tile` (256 for a full tile).
    Tile {
        /// The tile.
        tile: TileId,
        /// Its width: 256 for a full tile, 1..=255 for a partial one.
        width: u16,
    },
    /// `tile/entries/<N>[.p/<W>]`: the entries under level-0 tile `index`.
    Entries {
        /// The bundle's index (that of its level-0 tile).
        index: u64,
        /// Its width.
        width: u16,
    },
    /// `records/<N>[.p/<W>]`: the same positions as entry bundle `index`, as whole records
    /// (an encoding of the log's own, served at a URL of its own as the spec requires).
    Records {
        /// The bundle's index.
        index: u64,
        /// Its width.
        width: u16,
    },
}

impl TileResource {
    /// Parses the part of a URL path after the log prefix and its slash (`tile/0/x001/234.p/7`).
    /// Only the canonical spelling is accepted, so one resource has one URL (and one cache entry).
    ///
    /// # Errors
    /// [`TileError::Path`] for anything that is not a resource of the layout;
    /// [`TileError::LevelOutOfRange`] / [`TileError::IndexOutOfRange`] for a well-formed path of
    /// a tile no `u64`-sized tree has.
    pub fn parse(path: &str) -> Result<Self, TileError> {
        if path == "checkpoint" {
            return Ok(TileResource::Checkpoint);
        }
        if let Some(rest) = path.strip_prefix("records/") {
            let (index, width) = parse_index_and_width(rest)?;
            // The index must name a level-0 tile.
            TileId::new(0, index)?;
            return Ok(TileResource::Records { index, width });
        }
        let Some(rest) = path.strip_prefix("tile/") else {
            return Err(TileError::Path("expected checkpoint, tile/ or records/"));
        };
        if let Some(rest) = rest.strip_prefix("entries/") {
            let (index, width) = parse_index_and_width(rest)?;
            TileId::new(0, index)?;
            return Ok(TileResource::Entries { index, width });
        }
        let (level, rest) = rest
            .split_once('/')
            .ok_or(TileError::Path("a tile path is tile/<L>/<N>"))?;
        let level = parse_decimal(level, 63).ok_or(TileError::Path(
            "the tile level is a decimal from 0 to 63 without leading zeros",
        ))?;
        let (index, width) = parse_index_and_width(rest)?;
        // `parse_decimal` bounded it by 63.
        let tile = TileId::new(level as u8, index)?;
        Ok(TileResource::Tile { tile, width })
    }
}

/// A decimal of at most `max` without leading zeros (`0` itself is allowed).
fn parse_decimal(text: &str, max: u64) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical
        .then(|| text.parse::<u64>().ok())
        .flatten()
        .filter(|&n| n <= max)
}

/// Parses `<N>[.p/<W>]` as written by [`push_index_and_width`], refusing any other spelling.
fn parse_index_and_width(text: &str) -> Result<(u64, u16), TileError> {
    let (index_text, width) = match text.split_once(".p/") {
        Some((index, width)) => {
            let width = parse_decimal(width, u64::from(TILE_HASHES_MAX) - 1)
                .filter(|&w| w > 0)
                .ok_or(TileError::Path(
                    "a partial tile's width is a decimal from 1 to 255 without leading zeros",
                ))?;
            // Bounded by 255 above.
            (index, width as u16)
        }
        None => (text, TILE_HASHES_MAX),
    };
    // A u64 has at most 20 digits: 7 groups. More is refused before anything is collected, so a
    // long hostile path costs no more than a short one.
    if index_text.split('/').nth(7).is_some() {
        return Err(TileError::Path("the index does not fit in 64 bits"));
    }
    let groups: Vec<&str> = index_text.split('/').collect();
    let last = groups.len() - 1;
    let mut index: u64 = 0;
    for (position, group) in groups.iter().enumerate() {
        let digits = if position < last {
            group.strip_prefix('x').ok_or(TileError::Path(
                "every index group but the last begins with x",
            ))?
        } else {
            group
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TileError::Path("an index group is three digits"));
        }
        if position == 0 && position < last && digits == "000" {
            return Err(TileError::Path("an index has no leading x000 group"));
        }
        let value: u64 = digits
            .parse()
            .map_err(|_| TileError::Path("an index group is three digits"))?;
        index = index
            .checked_mul(1000)
            .and_then(|i| i.checked_add(value))
            .ok_or(TileError::Path("the index does not fit in 64 bits"))?;
    }
    Ok((index, width))
}

/// The tiles that hold the nodes `ids` of the tree of `size`, each with the width it has at that
/// size: what a tiles client fetches to compute a proof (see [`node_hashes_from_tiles`]).
///
/// # Errors
/// [`TileError::NotInTree`] when a node lies outside the tree of `size`.
pub fn tiles_for_nodes(
    ids: &[NodeId],
    size: TreeSize,
) -> Result<std::collections::BTreeMap<TileId, u16>, TileError> {
    let mut tiles = std::collections::BTreeMap::new();
    for &id in ids {
        let span = TileSpan::for_node(id);
        let tile = span.tile();
        let width =
            tile_width(tile, size)
                .filter(|&w| w >= span.end())
                .ok_or(TileError::NotInTree {
                    level: tile.level(),
                    index: tile.index(),
                })?;
        tiles.insert(tile, width);
    }
    Ok(tiles)
}

/// The hashes of the nodes `ids`, in order, from fetched tiles (by tile, its hashes).
///
/// # Errors
/// [`TileError::TileMissing`] when a tile is not in `tiles`; [`TileError::TooFewHashes`] when a
/// tile is narrower than a node needs.
pub fn node_hashes_from_tiles(
    ids: &[NodeId],
    tiles: &std::collections::BTreeMap<TileId, Vec<Hash>>,
) -> Result<Vec<Hash>, TileError> {
    ids.iter()
        .map(|&id| {
            let span = TileSpan::for_node(id);
            let tile = span.tile();
            let hashes = tiles.get(&tile).ok_or(TileError::TileMissing {
                level: tile.level(),
                index: tile.index(),
            })?;
            span.node_hash(hashes)
        })
        .collect()
}

/// An entry bundle: each entry as a big-endian uint16 length followed by its bytes.
///
/// # Errors
/// [`TileError::EntryTooLong`] for an entry of more than 65,535 bytes.
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, TileError> {
    let mut body = Vec::new();
    for entry in entries {
        let len =
            u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLong { len: entry.len() })?;
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(entry);
    }
    Ok(body)
}

/// The entries of an entry bundle, in order.
///
/// # Errors
/// [`TileError::BundleTruncated`] when a length prefix or an entry runs past the end.
pub fn entries_from_bundle(body: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut entries = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let Some(prefix) = body.get(at..at + 2) else {
            return Err(TileError::BundleTruncated { at });
        };
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        let Some(entry) = body.get(at + 2..at + 2 + len) else {
            return Err(TileError::BundleTruncated { at });
        };
        entries.push(entry);
        at += 2 + len;
    }
    Ok(entries)
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
    fn every_path_written_parses_back_to_its_resource() {
        for (level, index, width) in [
            (0, 0, 256),
            (1, 7, 256),
            (0, 1000, 17),
            (2, 1_234_067, 1),
            (0, u64::MAX >> 8, 255),
        ] {
            let t = tile(level, index);
            let path = t.path(width).expect("valid");
            assert_eq!(
                TileResource::parse(&path),
                Ok(TileResource::Tile { tile: t, width }),
                "{path}"
            );
            let entries = entries_path(index, width).expect("valid");
            if level == 0 {
                assert_eq!(
                    TileResource::parse(&entries),
                    Ok(TileResource::Entries { index, width })
                );
            }
        }
        assert_eq!(
            TileResource::parse("records/x001/234.p/9"),
            Ok(TileResource::Records {
                index: 1234,
                width: 9
            })
        );
        assert_eq!(
            TileResource::parse("checkpoint"),
            Ok(TileResource::Checkpoint)
        );
    }

    #[test]
    fn non_canonical_and_malformed_paths_are_refused() {
        for path in [
            "",
            "checkpoint/",
            "tile/0/0",
            "tile/0/0000",
            "tile/00/000",
            "tile/01/000",
            "tile/64/000",
            "tile/-1/000",
            "tile/0/x000/001",
            "tile/0/001/x002",
            "tile/0/y001/002",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/07",
            "tile/0/000.p/",
            "tile/0/000.p/1/2",
            "tile/0/000/",
            "tile/0/x001/x002/x003/x004/x005/x006/x007/008",
            "tile/entries/abc",
            "tile/entries/",
            "tile/0",
            "records/",
            "other",
            "tile/0/+01",
        ] {
            assert!(TileResource::parse(path).is_err(), "{path:?} parsed");
        }
        // Well-formed, but above any tile of a u64-sized tree.
        assert_eq!(
            TileResource::parse("tile/9/000"),
            Err(TileError::LevelOutOfRange { level: 9 })
        );
    }

    #[test]
    fn entry_bundles_are_uint16_length_prefixed() {
        let a = [1u8; 32];
        let b = [2u8; 3];
        let body = entry_bundle([&a[..], &b[..]]).expect("short entries");
        assert_eq!(&body[..2], &[0, 32]);
        assert_eq!(body.len(), 2 + 32 + 2 + 3);
        assert_eq!(
            entries_from_bundle(&body).expect("well formed"),
            vec![&a[..], &b[..]]
        );
        assert_eq!(
            entries_from_bundle(&body[..body.len() - 1]),
            Err(TileError::BundleTruncated { at: 34 })
        );
        assert_eq!(
            entries_from_bundle(&[0]),
            Err(TileError::BundleTruncated { at: 0 })
        );
        assert_eq!(
            entries_from_bundle(&[]).expect("empty"),
            Vec::<&[u8]>::new()
        );
        let long = vec![0u8; 65_536];
        assert_eq!(
            entry_bundle([&long[..]]),
            Err(TileError::EntryTooLong { len: 65_536 })
        );
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
