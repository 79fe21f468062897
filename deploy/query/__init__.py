"""What `journeys query` asks ClickHouse and how it answers: the options checked (`options`),
the definitions and stages that exist (`catalog`), the SQL of each question (`questions`), the
answers shaped (`answers`) and written (`formats`), all pure; `reader` is the one module that
opens ClickHouse."""
