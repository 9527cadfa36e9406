//! Sites: one YAML file describing a deployment as components
//! (`kafka-buffer`, `processing-node`, `mirror`, `testdata`), checked with
//! YAML-path errors ([`site`]), run on one machine as supervised processes
//! ([`supervisor`]), and the test-data producer behind `starlog testdata`
//! ([`testdata`]).

pub mod render;
pub mod site;
pub mod supervisor;
pub mod testdata;

pub use site::{Site, SiteError};
