//! Prometheus text at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tandem_sfu::metrics::SfuMetrics;

pub struct Metrics {
    registry: Registry,
    classes_active: Gauge,
    participants_active: Gauge,
    pupils_active: Gauge,
}

impl Metrics {
    pub fn new(sfu: &SfuMetrics) -> Self {
        let mut registry = Registry::default();
        let classes_active = Gauge::default();
        let participants_active = Gauge::default();
        registry.register(
            "tandem_classes_active",
            "Classes live in memory",
            classes_active.clone(),
        );
        registry.register(
            "tandem_participants_active",
            "Classrooms connected to a class",
            participants_active.clone(),
        );
        let pupils_active = Gauge::default();
        registry.register(
            "tandem_pupils_active",
            "Pupils' vote-only devices connected to a class",
            pupils_active.clone(),
        );
        sfu.register(&mut registry);
        registry.register_collector(Box::new(crate::process::ProcessCollector));
        Self {
            registry,
            classes_active,
            participants_active,
            pupils_active,
        }
    }

    /// Count the database writer's commits, writes and queue too.
    pub fn with_database(mut self, writer: crate::store::writer::Writer) -> Self {
        self.registry.register_collector(Box::new(writer));
        self
    }

    /// Pupils connected now (set before `render`).
    pub fn set_pupils(&self, pupils: usize) {
        self.pupils_active.set(pupils as i64);
    }

    /// The exposition, with the census taken at scrape time.
    pub fn render(&self, classes: usize, participants: usize) -> String {
        self.classes_active.set(classes as i64);
        self.participants_active.set(participants as i64);
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
