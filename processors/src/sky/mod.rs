//! Positions on the sky: angular distance, the zone index, static catalogs.
//!
//! Everything is in degrees at the API; radians only inside computations.

pub mod catalog;
pub mod distance;
pub mod zone_index;

pub use catalog::{Catalog, CatalogColumns, CatalogError};
pub use distance::{angular_distance_deg, ARCSEC_PER_DEG};
pub use zone_index::{Neighbor, ZoneIndex};
