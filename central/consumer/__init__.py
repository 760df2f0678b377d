"""The consumer: MQTT readings validated, batched and written to InfluxDB, acked after the write."""
