// Runs SQL through clickhouse-go v2 over HTTP with the options Grafana's ClickHouse data source
// (grafana-clickhouse-datasource, pkg/plugin/driver.go) builds for protocol "http", so the
// test suite checks that the Journeys HTTP interface serves Grafana's client as a ClickHouse
// server would. Usage: clickhouse-go ADDR USER PASSWORD < statements (one per line).
// Prints one JSON line per statement: {"columns", "types", "rows"} or {"error"}, and exits
// non-zero on the first error.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

type result struct {
	Columns []string    `json:"columns"`
	Types   []string    `json:"types"`
	Rows    [][]*string `json:"rows"`
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: clickhouse-go ADDR USER PASSWORD < statements")
		os.Exit(2)
	}
	db := clickhouse.OpenDB(&clickhouse.Options{
		Addr:        []string{os.Args[1]},
		Auth:        clickhouse.Auth{Database: "default", Username: os.Args[2], Password: os.Args[3]},
		Protocol:    clickhouse.HTTP,
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionGZIP},
		DialTimeout: 10 * time.Second,
		ReadTimeout: 60 * time.Second,
	})
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Second)
	defer cancel()
	out := json.NewEncoder(os.Stdout)
	lines := bufio.NewScanner(os.Stdin)
	lines.Buffer(make([]byte, 1<<20), 16<<20)
	for lines.Scan() {
		found, err := query(ctx, db, lines.Text())
		if err != nil {
			out.Encode(map[string]string{"error": err.Error()})
			os.Exit(1)
		}
		out.Encode(found)
	}
}

func query(ctx context.Context, db *sql.DB, statement string) (*result, error) {
	rows, err := db.QueryContext(ctx, statement)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := &result{Rows: [][]*string{}}
	if found.Columns, err = rows.Columns(); err != nil {
		return nil, err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	for _, t := range types {
		found.Types = append(found.Types, t.DatabaseTypeName())
	}
	for rows.Next() {
		values := make([]any, len(found.Columns))
		targets := make([]any, len(values))
		for i := range values {
			targets[i] = &values[i]
		}
		if err := rows.Scan(targets...); err != nil {
			return nil, err
		}
		row := make([]*string, len(values))
		for i, value := range values {
			if value != nil {
				text := fmt.Sprint(deref(value))
				row[i] = &text
			}
		}
		found.Rows = append(found.Rows, row)
	}
	return found, rows.Err()
}

// deref shows a Nullable column's value rather than its pointer.
func deref(value any) any {
	switch v := value.(type) {
	case *string:
		return *v
	case *uint64:
		return *v
	case *int64:
		return *v
	case *float64:
		return *v
	}
	return value
}
