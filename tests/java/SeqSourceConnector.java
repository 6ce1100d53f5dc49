// A Kafka Connect source connector for tests/integration (javaclients.py):
// every task produces a known sequence of records as fast as its producer
// takes them, so a test can check what reached Kafka through Sluice byte for
// byte and per task.
//
// Config:
//   topic             target topic (required)
//   tasks.max         how many tasks; this connector really creates that many
//   records.per.task  records each task produces, then it idles (default 1000)
//   value.bytes       pad values to this many bytes (default 0: no padding)
//   partitions        > 0: task record seq goes to partition seq % partitions;
//                     0 (default): no partition, the producer hashes the key
//   batch.records     at most this many records per poll() (default 500)
//   timestamp.base    record timestamp = base + seq; default -1: the task's
//                     start time in ms
//
// Task <t>'s record <seq> (seq = 0 .. records.per.task-1), all BYTES schema,
// so with ByteArrayConverter as key, value and header converter Kafka holds
// exactly these bytes:
//   key        "t<t>-<seq>"                                    (ASCII)
//   value      "t<t>-<seq>|" then '.' up to value.bytes total (ASCII)
//   headers    one: "task" = "<t>"                             (ASCII decimal)
//   timestamp  timestamp.base + seq
// Source partition {"task": t}, offset {"seq": seq}: a restarted task goes on
// after the last committed offset (at least once, so possibly repeating some).
// The task logs "SeqSource task <t>: all <n> records acked" (INFO) once the
// producer has acknowledged every record.
package dev.sluice.test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.source.SourceConnector;

public class SeqSourceConnector extends SourceConnector {

    static final String VERSION = "1";

    static final ConfigDef CONFIG = new ConfigDef()
        .define("topic", ConfigDef.Type.STRING, ConfigDef.NO_DEFAULT_VALUE,
                ConfigDef.Importance.HIGH, "Target topic")
        .define("records.per.task", ConfigDef.Type.LONG, 1000L, ConfigDef.Range.atLeast(0),
                ConfigDef.Importance.HIGH, "Records each task produces before idling")
        .define("value.bytes", ConfigDef.Type.INT, 0, ConfigDef.Range.atLeast(0),
                ConfigDef.Importance.MEDIUM, "Pad values with '.' to this length")
        .define("partitions", ConfigDef.Type.INT, 0, ConfigDef.Range.atLeast(0),
                ConfigDef.Importance.MEDIUM, "> 0: seq % partitions; 0: by key")
        .define("batch.records", ConfigDef.Type.INT, 500, ConfigDef.Range.atLeast(1),
                ConfigDef.Importance.LOW, "Most records per poll()")
        .define("timestamp.base", ConfigDef.Type.LONG, -1L,
                ConfigDef.Importance.LOW, "Timestamp of seq 0; -1: the task's start time");

    private Map<String, String> props;

    @Override
    public String version() {
        return VERSION;
    }

    @Override
    public void start(Map<String, String> props) {
        CONFIG.parse(props);  // fails the connector early on a bad config
        this.props = new HashMap<>(props);
    }

    @Override
    public Class<? extends Task> taskClass() {
        return SeqSourceTask.class;
    }

    @Override
    public List<Map<String, String>> taskConfigs(int maxTasks) {
        List<Map<String, String>> out = new ArrayList<>();
        for (int t = 0; t < maxTasks; t++) {
            Map<String, String> c = new HashMap<>(props);
            c.put("task.id", Integer.toString(t));
            out.add(c);
        }
        return out;
    }

    @Override
    public void stop() {
    }

    @Override
    public ConfigDef config() {
        return CONFIG;
    }
}
