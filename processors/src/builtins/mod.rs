//! The built-in processor classes, one per module, each with its YAML
//! parameters documented on its `parse` function.
//!
//! | class | kind |
//! | --- | --- |
//! | `SolarSystemFilter` | filter |
//! | `ExpressionFilter` | filter |
//! | `WatchlistFilter` | filter + annotation |
//! | `CrossmatchProcessor` | annotation (optionally a filter) |
//! | `KafkaTopicWriter` | writer (through the injected sink) |
//! | `AvroFileWriter` | writer (rolling container files) |

pub mod avro_file_writer;
pub mod crossmatch;
pub mod expression;
pub mod kafka_topic_writer;
pub mod solar_system;
pub mod watchlist;

pub use avro_file_writer::AvroFileWriter;
pub use crossmatch::{CatalogIndex, CrossmatchProcessor};
pub use expression::ExpressionFilter;
pub use kafka_topic_writer::{JsonShape, KafkaTopicWriter, KeyChoice, OutputFormat};
pub use solar_system::{SolarSystemAction, SolarSystemFilter};
pub use watchlist::{WatchlistEntry, WatchlistFilter};

use crate::config::ProcessorRegistry;

/// Registers every built-in class.
pub fn register_all(registry: &mut ProcessorRegistry) {
    registry.register("SolarSystemFilter", solar_system::parse);
    registry.register("ExpressionFilter", expression::parse);
    registry.register("WatchlistFilter", watchlist::parse);
    registry.register("CrossmatchProcessor", crossmatch::parse);
    registry.register("KafkaTopicWriter", kafka_topic_writer::parse);
    registry.register("AvroFileWriter", avro_file_writer::parse);
}
