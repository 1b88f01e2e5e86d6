package sqltext

import "testing"

func TestControl(t *testing.T) {
	t.Parallel()
	tests := map[string]TxControl{
		"BEGIN": TxStart, "begin work": TxStart, "BEGIN ISOLATION LEVEL SERIALIZABLE": TxStart,
		"START TRANSACTION READ ONLY": TxStart, "start": NoTxControl,
		"COMMIT": TxEnd, "commit and chain": TxEnd, "END": TxEnd, "abort": TxEnd, "ROLLBACK": TxEnd,
		"rollback and no chain": TxEnd, "ROLLBACK PREPARED 'x'": TxEnd, "COMMIT PREPARED 'x'": TxEnd,
		"PREPARE TRANSACTION 'x'": TxEnd, "PREPARE q AS SELECT 1": NoTxControl,
		"SAVEPOINT a": TxSavepoint, "RELEASE a": TxSavepoint, "release savepoint a": TxSavepoint,
		"ROLLBACK TO a": TxSavepoint, "rollback work to savepoint a": TxSavepoint, "ROLLBACK TRANSACTION TO a": TxSavepoint,
		"/* x */ -- y\n COMMIT": TxEnd, "SELECT 'commit'": NoTxControl, `"commit"`: NoTxControl,
		"DO $$ BEGIN COMMIT; END $$": NoTxControl, "": NoTxControl, "endpoint": NoTxControl,
	}
	for sql, want := range tests {
		if got := Control(sql); got != want {
			t.Errorf("Control(%q) = %v, want %v", sql, got, want)
		}
	}
}

func TestFirstControl(t *testing.T) {
	t.Parallel()
	tests := []struct {
		script string
		kinds  []TxControl
		want   int
	}{
		{"SELECT 1; COMMIT", []TxControl{TxEnd}, 1},
		{"SELECT 1; SAVEPOINT a", []TxControl{TxStart, TxEnd}, -1},
		{"SELECT 1; SAVEPOINT a", []TxControl{TxSavepoint}, 1},
		{"SELECT ';COMMIT'; SELECT $a$;commit;$a$", []TxControl{TxEnd}, -1},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; END", []TxControl{TxEnd}, 1},
		{"CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); COMMIT)", []TxControl{TxEnd}, -1},
		{"BEGIN", []TxControl{TxStart}, 0},
	}
	for _, tt := range tests {
		if got, _, _ := FirstControl(tt.script, tt.kinds...); got != tt.want {
			t.Errorf("FirstControl(%q, %v) = %d, want %d", tt.script, tt.kinds, got, tt.want)
		}
	}
}

func TestIsData(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"SELECT 1": true, "(SELECT 1) UNION (SELECT 2)": true, "insert into t values (1) returning id": true,
		"UPDATE t SET a = 1": true, "DELETE FROM t": true, "VALUES (1)": true, "TABLE t": true,
		"WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x":               true,
		"MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)": true,
		"SELECT 'into' AS \"into\"": true, "-- a comment\nSELECT 1": true, "SELECT 1;": true,
		"SELECT 1 INTO t": false, "select * into temporary table t from s": false,
		"WITH v AS (SELECT 1) SELECT * INTO t FROM v": false, "(SELECT 1 INTO t)": false,
		"SELECT 1 AS insert INTO t":  false,
		"CREATE TABLE t AS SELECT 1": false, "CREATE TABLE t (id int)": false, "SELECT 1; DROP TABLE t": false,
		"EXPLAIN SELECT 1": false, "": false, "-- nothing": false, "DO $$ BEGIN END $$": false,
	}
	for sql, want := range tests {
		if got := IsData(sql); got != want {
			t.Errorf("IsData(%q) = %v, want %v", sql, got, want)
		}
	}
}
