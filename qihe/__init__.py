"""qihe-edge: the command line, the MQTT wire contract and the local dev stack."""
