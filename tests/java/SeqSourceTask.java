// The task of SeqSourceConnector (see there for what it produces).
package dev.sluice.test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.header.ConnectHeaders;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.source.SourceTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

public class SeqSourceTask extends SourceTask {

    private static final Logger LOG = LoggerFactory.getLogger(SeqSourceTask.class);
    private static final long IDLE_MS = 100;

    private int task;
    private String topic;
    private long total;
    private int valueBytes;
    private int partitions;
    private int batch;
    private long tsBase;
    private long next;              // seq of the next record to hand out
    private Map<String, Integer> sourcePartition;
    private byte[] taskBytes;
    private final AtomicLong acked = new AtomicLong();
    private volatile boolean stopping;

    @Override
    public String version() {
        return SeqSourceConnector.VERSION;
    }

    @Override
    public void start(Map<String, String> props) {
        AbstractConfig c = new AbstractConfig(SeqSourceConnector.CONFIG, props);
        task = Integer.parseInt(props.get("task.id"));
        topic = c.getString("topic");
        total = c.getLong("records.per.task");
        valueBytes = c.getInt("value.bytes");
        partitions = c.getInt("partitions");
        batch = c.getInt("batch.records");
        tsBase = c.getLong("timestamp.base");
        if (tsBase < 0) {
            tsBase = System.currentTimeMillis();
        }
        taskBytes = Integer.toString(task).getBytes(StandardCharsets.US_ASCII);
        sourcePartition = Collections.singletonMap("task", task);
        next = 0;
        Map<String, Object> off = context.offsetStorageReader().offset(sourcePartition);
        if (off != null && off.get("seq") instanceof Number) {
            next = ((Number) off.get("seq")).longValue() + 1;
        }
        // Records before `next` were acked by an earlier run of this task.
        acked.set(Math.min(next, total));
        LOG.info("SeqSource task {}: topic {}, records {} to {}, value.bytes {}, partitions {}",
                 task, topic, next, total - 1, valueBytes, partitions);
    }

    @Override
    public List<SourceRecord> poll() throws InterruptedException {
        if (next >= total || stopping) {
            Thread.sleep(IDLE_MS);
            return null;
        }
        int n = (int) Math.min(batch, total - next);
        List<SourceRecord> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++, next++) {
            byte[] key = ("t" + task + "-" + next).getBytes(StandardCharsets.US_ASCII);
            byte[] value = Arrays.copyOf(key, Math.max(valueBytes, key.length + 1));
            value[key.length] = '|';
            Arrays.fill(value, key.length + 1, value.length, (byte) '.');
            ConnectHeaders headers = new ConnectHeaders();
            headers.add("task", taskBytes.clone(), Schema.BYTES_SCHEMA);
            Integer partition = partitions > 0 ? (int) (next % partitions) : null;
            out.add(new SourceRecord(sourcePartition, Collections.singletonMap("seq", next),
                                     topic, partition, Schema.BYTES_SCHEMA, key,
                                     Schema.BYTES_SCHEMA, value, tsBase + next, headers));
        }
        return out;
    }

    @Override
    public void commitRecord(SourceRecord record, RecordMetadata metadata) {
        if (metadata != null && acked.incrementAndGet() == total) {
            LOG.info("SeqSource task {}: all {} records acked", task, total);
        }
    }

    @Override
    public void stop() {
        stopping = true;
    }
}
