//! Topic administration with the StreamBus client: create, grow, describe, list offsets,
//! delete. Run a broker, then `cargo run --example admin -- 127.0.0.1:9092`.

use glommio::{LocalExecutorBuilder, Placement};
use streambus::client::{Admin, ClientConfig, NewTopic, OffsetSpec};

fn main() {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            let admin = Admin::new(ClientConfig::new(&bootstrap));
            let mut topic = NewTopic::new("admin-example", 2);
            topic
                .configs
                .push(("retention.ms".into(), "3600000".into()));
            match admin.create_topics(&[topic]).await {
                Ok(results) => println!("create: {results:?}"),
                Err(error) => eprintln!("create: {error}"),
            }
            if let Err(error) = admin.create_partitions("admin-example", 4).await {
                eprintln!("grow: {error}");
            }
            match admin.describe_topic("admin-example").await {
                Ok(info) => {
                    for (partition, details) in info.partitions.iter().enumerate() {
                        let latest = admin
                            .list_offset("admin-example", partition as i32, OffsetSpec::Latest)
                            .await;
                        println!(
                            "partition {partition}: leader {} latest {latest:?}",
                            details.leader
                        );
                    }
                }
                Err(error) => eprintln!("describe: {error}"),
            }
            match admin.delete_topics(&["admin-example"]).await {
                Ok(results) => println!("delete: {results:?}"),
                Err(error) => eprintln!("delete: {error}"),
            }
        })
        .expect("start a glommio executor (is `ulimit -l` high enough?)")
        .join()
        .expect("example");
}
