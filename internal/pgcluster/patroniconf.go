package pgcluster

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Patroni's timing, in seconds, written into etcd at bootstrap: the leader
// lock expires ttl seconds after the leader last renewed it (so a kill -9
// of the leader is noticed within ttl), each node's loop runs every
// loop_wait seconds, and etcd and PostgreSQL operations are retried for
// retry_timeout seconds before a leader demotes itself.
const (
	patroniTTL          = 20
	patroniLoopWait     = 2
	patroniRetryTimeout = 5
)

// nodeConfig is node n's Patroni configuration file. JSON is YAML, so it is
// written with encoding/json.
func (p *Patroni) nodeConfig(n *patroniNode) (string, error) {
	trustLoopback := []string{
		"host all all 127.0.0.1/32 trust",
		"host replication all 127.0.0.1/32 trust",
	}
	postgres := map[string]any{"username": "postgres"}
	conf := map[string]any{
		"scope":     "pgcluster",
		"namespace": "/pgcluster/",
		"name":      n.name,
		"log":       map[string]any{"level": "INFO"}, // on standard error, into n.log
		"restapi": map[string]any{
			"listen":          "127.0.0.1:" + strconv.Itoa(n.apiPort),
			"connect_address": "127.0.0.1:" + strconv.Itoa(n.apiPort),
		},
		"etcd3": map[string]any{"hosts": []string{"127.0.0.1:" + strconv.Itoa(p.etcd.clientPort)}},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				"ttl":                     patroniTTL,
				"loop_wait":               patroniLoopWait,
				"retry_timeout":           patroniRetryTimeout,
				"synchronous_mode":        true,
				"maximum_lag_on_failover": 16 << 20,
				"postgresql": map[string]any{
					// The old leader of a kill -9 may have WAL its successor
					// never got (not a commit: those waited for the
					// synchronous standby); pg_rewind lets it rejoin.
					"use_pg_rewind": true,
					"use_slots":     true,
					"parameters": map[string]any{
						"max_connections":    100,
						"shared_buffers":     "32MB",
						"wal_keep_size":      "128MB",
						"synchronous_commit": "on",
						"fsync":              "off", // the tests crash processes, not the machine
						"hot_standby":        "on",
						"wal_log_hints":      "on", // for pg_rewind
					},
				},
			},
			"initdb": []any{map[string]any{"encoding": "UTF8"}, map[string]any{"locale": "C"}, "no-sync"},
		},
		"postgresql": map[string]any{
			"listen":          "127.0.0.1:" + strconv.Itoa(n.pgPort),
			"connect_address": "127.0.0.1:" + strconv.Itoa(n.pgPort),
			"data_dir":        n.data,
			"bin_dir":         p.bin,
			"pgpass":          n.dir + "/pgpass",
			"authentication": map[string]any{
				"superuser": postgres, "replication": postgres, "rewind": postgres,
			},
			// No Unix socket: a long TMPDIR would make its path too long.
			// Patroni connects over TCP to listen's address.
			"parameters": map[string]any{"unix_socket_directories": ""},
			"pg_hba":     trustLoopback,
			"basebackup": []any{map[string]any{"checkpoint": "fast"}, "no-sync"},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return "", fmt.Errorf("%s's Patroni configuration: %w", n.name, err)
	}
	return string(b) + "\n", nil
}
