-- Target schema of the IndexedDB -> MySQL migration.
--
-- Runs on MySQL 8.0+ and MariaDB 10.6+, with the plain client
--   mysql DB < sql/schema.mysql.sql
-- and with `etl schema apply`. Applying it again changes nothing and loses nothing:
-- tables are CREATE ... IF NOT EXISTS, views CREATE OR REPLACE, routines and
-- triggers dropped and created again (they hold no data), seed rows inserted only when absent.
-- Tables made by an older version of this file are brought to this one by
-- `etl schema apply --upgrade` (etl/mysql/upgrade.py), which names each change first.
--
-- The data tables' columns mirror etl/core/stores.py (the one description of each store);
-- tests/test_schema.py checks the two against information_schema on a live server.
-- Each data table's `row_digest` (a STORED generated column parity reads instead of the
-- rows) is rendered from the description by etl/core/digest.py: `python -m etl.core.digest` prints
-- the lines, and the tests fail when this file's copy differs.
--
-- Where MySQL and MariaDB differ, this file keeps to what both accept:
-- * collations: utf8mb4_unicode_ci for text and utf8mb4_bin for keys exist on both
--   (MySQL 8's default utf8mb4_0900_ai_ci does not exist on MariaDB < 11.4). Both are
--   PAD SPACE collations, so keys differing only by trailing spaces collide; the
--   transform treats such keys as duplicates and reports them.
-- * no JSON column type: MariaDB's JSON is a LONGTEXT alias and MySQL's is binary, so
--   JSON is kept as MEDIUMTEXT text on both.
-- * numbers the UI computes with are DOUBLE, not DECIMAL: the app's values are JavaScript
--   numbers (IEEE doubles), which DOUBLE holds exactly, and mysql2 (the backend's driver)
--   returns DECIMAL as text, which turns the UI's sums into concatenated strings.
-- * integer display widths (INT(11)) are shown by MariaDB and not by MySQL 8.0.19+;
--   nothing here depends on them.
-- * row_digest is `GENERATED ALWAYS AS (...) STORED INVISIBLE` on both; INVISIBLE needs
--   MySQL 8.0.23+ (MariaDB 10.3+). Its expression uses only functions both define the same
--   way (CONCAT_WS, IFNULL, LENGTH in bytes, SHA2, CONV), over DATETIME (not TIMESTAMP), so no
--   session setting (time zone, sql_mode) changes a digest. MySQL refuses MD5 and SHA1 in a
--   generated column (error 3763); MariaDB takes both. Its COMMENT names the definition.
-- * triggers are single statements, so they need no DELIMITER; procedures use one.
--   With binary logging on, MySQL 8 needs log_bin_trust_function_creators=1 (or
--   SUPER) to create triggers; MariaDB needs the TRIGGER privilege only.

SET NAMES utf8mb4;

-- ---------------------------------------------------------------- data tables

CREATE TABLE IF NOT EXISTS tickets (
  id                           VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
  customer_id                  VARCHAR(255),
  name                         VARCHAR(255),
  category                     VARCHAR(100),
  description                  TEXT,
  cause                        TEXT,
  handling                     TEXT,
  open_time                    DATETIME(3) NOT NULL,
  close_time                   DATETIME(3),
  duration_raw_hours           DOUBLE,
  duration_formatted           VARCHAR(50),
  close_handling               DATETIME(3),
  handling_duration_raw_hours  DOUBLE,
  handling_duration_formatted  VARCHAR(50),
  classification               VARCHAR(255),
  sub_classification           VARCHAR(255),
  status                       VARCHAR(50),
  handling1                    TEXT,
  handling2                    TEXT,
  handling3                    TEXT,
  handling4                    TEXT,
  handling5                    TEXT,
  close_handling1              DATETIME(3),
  close_handling2              DATETIME(3),
  close_handling3              DATETIME(3),
  close_handling4              DATETIME(3),
  close_handling5              DATETIME(3),
  handling_duration1_raw_hours DOUBLE,
  handling_duration1_formatted VARCHAR(50),
  handling_duration2_raw_hours DOUBLE,
  handling_duration2_formatted VARCHAR(50),
  handling_duration3_raw_hours DOUBLE,
  handling_duration3_formatted VARCHAR(50),
  handling_duration4_raw_hours DOUBLE,
  handling_duration4_formatted VARCHAR(50),
  handling_duration5_raw_hours DOUBLE,
  handling_duration5_formatted VARCHAR(50),
  open_by                      VARCHAR(255),
  cabang                       VARCHAR(128),
  rep_class                    VARCHAR(64),
  upload_timestamp             BIGINT,
  batch_id                     VARCHAR(255),
  file_name                    VARCHAR(255),
  file_hash                    VARCHAR(128),
  upload_session_id            VARCHAR(255),
  sla_4h                       TINYINT(1),
  sla_8h                       TINYINT(1),
  sla_24h                      TINYINT(1),
  created_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  row_digest                   BIGINT GENERATED ALWAYS AS (CAST(CONV(LEFT(SHA2(CONCAT_WS(',',
      IFNULL(CONCAT(LENGTH(`id`), ':', `id`), 'N'),
      IFNULL(CONCAT(LENGTH(`customer_id`), ':', `customer_id`), 'N'),
      IFNULL(CONCAT(LENGTH(`name`), ':', `name`), 'N'),
      IFNULL(CONCAT(LENGTH(`category`), ':', `category`), 'N'),
      IFNULL(CONCAT(LENGTH(`description`), ':', `description`), 'N'),
      IFNULL(CONCAT(LENGTH(`cause`), ':', `cause`), 'N'),
      IFNULL(CONCAT(LENGTH(`handling`), ':', `handling`), 'N'),
      IFNULL(`open_time`, 'N'),
      IFNULL(`close_time`, 'N'),
      IFNULL(CASE WHEN `duration_raw_hours` = 0 THEN '0' ELSE CONCAT(CAST(`duration_raw_hours` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`duration_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_raw_hours`))), 1023), -1074)) < 1) + (ABS(`duration_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_raw_hours`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`duration_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_raw_hours`))), 1023), -1074)) < 1) + (ABS(`duration_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_raw_hours`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(CONCAT(LENGTH(`duration_formatted`), ':', `duration_formatted`), 'N'),
      IFNULL(`close_handling`, 'N'),
      IFNULL(CASE WHEN `handling_duration_raw_hours` = 0 THEN '0' ELSE CONCAT(CAST(`handling_duration_raw_hours` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`handling_duration_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration_raw_hours`))), 1023), -1074)) < 1) + (ABS(`handling_duration_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration_raw_hours`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`handling_duration_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration_raw_hours`))), 1023), -1074)) < 1) + (ABS(`handling_duration_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration_raw_hours`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(CONCAT(LENGTH(`handling_duration_formatted`), ':', `handling_duration_formatted`), 'N'),
      IFNULL(CONCAT(LENGTH(`classification`), ':', `classification`), 'N'),
      IFNULL(CONCAT(LENGTH(`sub_classification`), ':', `sub_classification`), 'N'),
      IFNULL(CONCAT(LENGTH(`status`), ':', `status`), 'N'),
      IFNULL(CONCAT(LENGTH(`handling1`), ':', `handling1`), 'N'),
      IFNULL(CONCAT(LENGTH(`handling2`), ':', `handling2`), 'N'),
      IFNULL(CONCAT(LENGTH(`handling3`), ':', `handling3`), 'N'),
      IFNULL(CONCAT(LENGTH(`handling4`), ':', `handling4`), 'N'),
      IFNULL(CONCAT(LENGTH(`handling5`), ':', `handling5`), 'N'),
      IFNULL(`close_handling1`, 'N'),
      IFNULL(`close_handling2`, 'N'),
      IFNULL(`close_handling3`, 'N'),
      IFNULL(`close_handling4`, 'N'),
      IFNULL(`close_handling5`, 'N'),
      IFNULL(CASE WHEN `handling_duration1_raw_hours` = 0 THEN '0' ELSE CONCAT(CAST(`handling_duration1_raw_hours` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration1_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`handling_duration1_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration1_raw_hours`))), 1023), -1074)) < 1) + (ABS(`handling_duration1_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration1_raw_hours`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration1_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`handling_duration1_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration1_raw_hours`))), 1023), -1074)) < 1) + (ABS(`handling_duration1_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration1_raw_hours`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(CONCAT(LENGTH(`handling_duration1_formatted`), ':', `handling_duration1_formatted`), 'N'),
      IFNULL(CASE WHEN `handling_duration2_raw_hours` = 0 THEN '0' ELSE CONCAT(CAST(`handling_duration2_raw_hours` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration2_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`handling_duration2_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration2_raw_hours`))), 1023), -1074)) < 1) + (ABS(`handling_duration2_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration2_raw_hours`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration2_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`handling_duration2_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration2_raw_hours`))), 1023), -1074)) < 1) + (ABS(`handling_duration2_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration2_raw_hours`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(CONCAT(LENGTH(`handling_duration2_formatted`), ':', `handling_duration2_formatted`), 'N'),
      IFNULL(CASE WHEN `handling_duration3_raw_hours` = 0 THEN '0' ELSE CONCAT(CAST(`handling_duration3_raw_hours` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration3_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`handling_duration3_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration3_raw_hours`))), 1023), -1074)) < 1) + (ABS(`handling_duration3_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration3_raw_hours`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration3_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`handling_duration3_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration3_raw_hours`))), 1023), -1074)) < 1) + (ABS(`handling_duration3_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration3_raw_hours`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(CONCAT(LENGTH(`handling_duration3_formatted`), ':', `handling_duration3_formatted`), 'N'),
      IFNULL(CASE WHEN `handling_duration4_raw_hours` = 0 THEN '0' ELSE CONCAT(CAST(`handling_duration4_raw_hours` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration4_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`handling_duration4_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration4_raw_hours`))), 1023), -1074)) < 1) + (ABS(`handling_duration4_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration4_raw_hours`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration4_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`handling_duration4_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration4_raw_hours`))), 1023), -1074)) < 1) + (ABS(`handling_duration4_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration4_raw_hours`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(CONCAT(LENGTH(`handling_duration4_formatted`), ':', `handling_duration4_formatted`), 'N'),
      IFNULL(CASE WHEN `handling_duration5_raw_hours` = 0 THEN '0' ELSE CONCAT(CAST(`handling_duration5_raw_hours` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration5_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`handling_duration5_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration5_raw_hours`))), 1023), -1074)) < 1) + (ABS(`handling_duration5_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration5_raw_hours`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration5_raw_hours`))), 1023), -1074) AS SIGNED) - (ABS(`handling_duration5_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration5_raw_hours`))), 1023), -1074)) < 1) + (ABS(`handling_duration5_raw_hours`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`handling_duration5_raw_hours`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(CONCAT(LENGTH(`handling_duration5_formatted`), ':', `handling_duration5_formatted`), 'N'),
      IFNULL(CONCAT(LENGTH(`open_by`), ':', `open_by`), 'N'),
      IFNULL(CONCAT(LENGTH(`cabang`), ':', `cabang`), 'N'),
      IFNULL(CONCAT(LENGTH(`rep_class`), ':', `rep_class`), 'N'),
      IFNULL(`upload_timestamp`, 'N'),
      IFNULL(CONCAT(LENGTH(`batch_id`), ':', `batch_id`), 'N'),
      IFNULL(CONCAT(LENGTH(`file_name`), ':', `file_name`), 'N'),
      IFNULL(CONCAT(LENGTH(`file_hash`), ':', `file_hash`), 'N'),
      IFNULL(CONCAT(LENGTH(`upload_session_id`), ':', `upload_session_id`), 'N'),
      IFNULL(`sla_4h`, 'N'),
      IFNULL(`sla_8h`, 'N'),
      IFNULL(`sla_24h`, 'N')), 256), 15), 16, 10) AS SIGNED)) STORED INVISIBLE
                               COMMENT 'SHA-256 of the described columns, 60 bits, doubles as significand and exponent (etl/digest.py)',
  PRIMARY KEY (id),
  KEY idx_tickets_open_time (open_time),
  KEY idx_tickets_name (name),
  KEY idx_tickets_upload_timestamp (upload_timestamp),
  KEY idx_tickets_cabang (cabang),
  KEY idx_tickets_status (status),
  KEY idx_tickets_category (category),
  KEY idx_tickets_natural (customer_id, open_time, open_by),
  KEY idx_tickets_batch_id (batch_id),
  KEY idx_tickets_file_hash (file_hash),
  KEY idx_tickets_file_name (file_name),
  KEY idx_tickets_upload_session_id (upload_session_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS incidents (
  id                           VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
  no_case                      VARCHAR(255),
  priority                     VARCHAR(50),
  site                         VARCHAR(255),
  ncal                         VARCHAR(50),
  status                       VARCHAR(50),
  level                        INT,
  ts                           VARCHAR(255),
  odp_bts                      VARCHAR(255),
  start_time                   DATETIME(3),
  start_escalation_vendor      DATETIME(3),
  end_time                     DATETIME(3),
  duration_min                 DOUBLE,
  duration_vendor_min          DOUBLE,
  problem                      TEXT,
  penyebab                     TEXT,
  action_terakhir              TEXT,
  note                         TEXT,
  klasifikasi_gangguan         VARCHAR(255),
  power_before                 DOUBLE,
  power_after                  DOUBLE,
  start_pause1                 DATETIME(3),
  end_pause1                   DATETIME(3),
  start_pause2                 DATETIME(3),
  end_pause2                   DATETIME(3),
  total_duration_pause_min     DOUBLE,
  total_duration_vendor_min    DOUBLE,
  net_duration_min             DOUBLE,
  imported_at                  DATETIME(3),
  upload_timestamp             BIGINT,
  batch_id                     VARCHAR(255),
  file_name                    VARCHAR(255),
  file_hash                    VARCHAR(128),
  upload_session_id            VARCHAR(255),
  created_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  row_digest                   BIGINT GENERATED ALWAYS AS (CAST(CONV(LEFT(SHA2(CONCAT_WS(',',
      IFNULL(CONCAT(LENGTH(`id`), ':', `id`), 'N'),
      IFNULL(CONCAT(LENGTH(`no_case`), ':', `no_case`), 'N'),
      IFNULL(CONCAT(LENGTH(`priority`), ':', `priority`), 'N'),
      IFNULL(CONCAT(LENGTH(`site`), ':', `site`), 'N'),
      IFNULL(CONCAT(LENGTH(`ncal`), ':', `ncal`), 'N'),
      IFNULL(CONCAT(LENGTH(`status`), ':', `status`), 'N'),
      IFNULL(`level`, 'N'),
      IFNULL(CONCAT(LENGTH(`ts`), ':', `ts`), 'N'),
      IFNULL(CONCAT(LENGTH(`odp_bts`), ':', `odp_bts`), 'N'),
      IFNULL(`start_time`, 'N'),
      IFNULL(`start_escalation_vendor`, 'N'),
      IFNULL(`end_time`, 'N'),
      IFNULL(CASE WHEN `duration_min` = 0 THEN '0' ELSE CONCAT(CAST(`duration_min` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_min`))), 1023), -1074) AS SIGNED) - (ABS(`duration_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_min`))), 1023), -1074)) < 1) + (ABS(`duration_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_min`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_min`))), 1023), -1074) AS SIGNED) - (ABS(`duration_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_min`))), 1023), -1074)) < 1) + (ABS(`duration_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_min`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(CASE WHEN `duration_vendor_min` = 0 THEN '0' ELSE CONCAT(CAST(`duration_vendor_min` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_vendor_min`))), 1023), -1074) AS SIGNED) - (ABS(`duration_vendor_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_vendor_min`))), 1023), -1074)) < 1) + (ABS(`duration_vendor_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_vendor_min`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_vendor_min`))), 1023), -1074) AS SIGNED) - (ABS(`duration_vendor_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_vendor_min`))), 1023), -1074)) < 1) + (ABS(`duration_vendor_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`duration_vendor_min`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(CONCAT(LENGTH(`problem`), ':', `problem`), 'N'),
      IFNULL(CONCAT(LENGTH(`penyebab`), ':', `penyebab`), 'N'),
      IFNULL(CONCAT(LENGTH(`action_terakhir`), ':', `action_terakhir`), 'N'),
      IFNULL(CONCAT(LENGTH(`note`), ':', `note`), 'N'),
      IFNULL(CONCAT(LENGTH(`klasifikasi_gangguan`), ':', `klasifikasi_gangguan`), 'N'),
      IFNULL(CASE WHEN `power_before` = 0 THEN '0' ELSE CONCAT(CAST(`power_before` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`power_before`))), 1023), -1074) AS SIGNED) - (ABS(`power_before`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`power_before`))), 1023), -1074)) < 1) + (ABS(`power_before`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`power_before`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`power_before`))), 1023), -1074) AS SIGNED) - (ABS(`power_before`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`power_before`))), 1023), -1074)) < 1) + (ABS(`power_before`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`power_before`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(CASE WHEN `power_after` = 0 THEN '0' ELSE CONCAT(CAST(`power_after` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`power_after`))), 1023), -1074) AS SIGNED) - (ABS(`power_after`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`power_after`))), 1023), -1074)) < 1) + (ABS(`power_after`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`power_after`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`power_after`))), 1023), -1074) AS SIGNED) - (ABS(`power_after`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`power_after`))), 1023), -1074)) < 1) + (ABS(`power_after`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`power_after`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(`start_pause1`, 'N'),
      IFNULL(`end_pause1`, 'N'),
      IFNULL(`start_pause2`, 'N'),
      IFNULL(`end_pause2`, 'N'),
      IFNULL(CASE WHEN `total_duration_pause_min` = 0 THEN '0' ELSE CONCAT(CAST(`total_duration_pause_min` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`total_duration_pause_min`))), 1023), -1074) AS SIGNED) - (ABS(`total_duration_pause_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`total_duration_pause_min`))), 1023), -1074)) < 1) + (ABS(`total_duration_pause_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`total_duration_pause_min`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`total_duration_pause_min`))), 1023), -1074) AS SIGNED) - (ABS(`total_duration_pause_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`total_duration_pause_min`))), 1023), -1074)) < 1) + (ABS(`total_duration_pause_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`total_duration_pause_min`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(CASE WHEN `total_duration_vendor_min` = 0 THEN '0' ELSE CONCAT(CAST(`total_duration_vendor_min` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`total_duration_vendor_min`))), 1023), -1074) AS SIGNED) - (ABS(`total_duration_vendor_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`total_duration_vendor_min`))), 1023), -1074)) < 1) + (ABS(`total_duration_vendor_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`total_duration_vendor_min`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`total_duration_vendor_min`))), 1023), -1074) AS SIGNED) - (ABS(`total_duration_vendor_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`total_duration_vendor_min`))), 1023), -1074)) < 1) + (ABS(`total_duration_vendor_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`total_duration_vendor_min`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(CASE WHEN `net_duration_min` = 0 THEN '0' ELSE CONCAT(CAST(`net_duration_min` / POW(2, (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`net_duration_min`))), 1023), -1074) AS SIGNED) - (ABS(`net_duration_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`net_duration_min`))), 1023), -1074)) < 1) + (ABS(`net_duration_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`net_duration_min`))), 1023), -1074)) >= 2))) * 4503599627370496 AS SIGNED), 'p', (CAST(GREATEST(LEAST(FLOOR(LOG2(ABS(`net_duration_min`))), 1023), -1074) AS SIGNED) - (ABS(`net_duration_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`net_duration_min`))), 1023), -1074)) < 1) + (ABS(`net_duration_min`) / POW(2, GREATEST(LEAST(FLOOR(LOG2(ABS(`net_duration_min`))), 1023), -1074)) >= 2))) END, 'N'),
      IFNULL(`imported_at`, 'N'),
      IFNULL(`upload_timestamp`, 'N'),
      IFNULL(CONCAT(LENGTH(`batch_id`), ':', `batch_id`), 'N'),
      IFNULL(CONCAT(LENGTH(`file_name`), ':', `file_name`), 'N'),
      IFNULL(CONCAT(LENGTH(`file_hash`), ':', `file_hash`), 'N'),
      IFNULL(CONCAT(LENGTH(`upload_session_id`), ':', `upload_session_id`), 'N')), 256), 15), 16, 10) AS SIGNED)) STORED INVISIBLE
                               COMMENT 'SHA-256 of the described columns, 60 bits, doubles as significand and exponent (etl/digest.py)',
  PRIMARY KEY (id),
  KEY idx_incidents_start_time (start_time),
  KEY idx_incidents_status (status),
  KEY idx_incidents_priority (priority),
  KEY idx_incidents_site (site),
  KEY idx_incidents_level (level),
  KEY idx_incidents_ncal (ncal),
  KEY idx_incidents_klasifikasi (klasifikasi_gangguan),
  KEY idx_incidents_natural (no_case, start_time),
  KEY idx_incidents_upload_timestamp (upload_timestamp),
  KEY idx_incidents_batch_id (batch_id),
  KEY idx_incidents_file_hash (file_hash),
  KEY idx_incidents_file_name (file_name),
  KEY idx_incidents_upload_session_id (upload_session_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS customers (
  id                           VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
  nama                         VARCHAR(255),
  jenis_klien                  VARCHAR(100),
  layanan                      VARCHAR(128),
  kategori                     VARCHAR(100),
  upload_timestamp             BIGINT,
  batch_id                     VARCHAR(255),
  file_name                    VARCHAR(255),
  file_hash                    VARCHAR(128),
  upload_session_id            VARCHAR(255),
  created_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  row_digest                   BIGINT GENERATED ALWAYS AS (CAST(CONV(LEFT(SHA2(CONCAT_WS(',',
      IFNULL(CONCAT(LENGTH(`id`), ':', `id`), 'N'),
      IFNULL(CONCAT(LENGTH(`nama`), ':', `nama`), 'N'),
      IFNULL(CONCAT(LENGTH(`jenis_klien`), ':', `jenis_klien`), 'N'),
      IFNULL(CONCAT(LENGTH(`layanan`), ':', `layanan`), 'N'),
      IFNULL(CONCAT(LENGTH(`kategori`), ':', `kategori`), 'N'),
      IFNULL(`upload_timestamp`, 'N'),
      IFNULL(CONCAT(LENGTH(`batch_id`), ':', `batch_id`), 'N'),
      IFNULL(CONCAT(LENGTH(`file_name`), ':', `file_name`), 'N'),
      IFNULL(CONCAT(LENGTH(`file_hash`), ':', `file_hash`), 'N'),
      IFNULL(CONCAT(LENGTH(`upload_session_id`), ':', `upload_session_id`), 'N')), 256), 15), 16, 10) AS SIGNED)) STORED INVISIBLE
                               COMMENT 'SHA-256 of the described columns, 60 bits, doubles as significand and exponent (etl/digest.py)',
  PRIMARY KEY (id),
  KEY idx_customers_nama (nama),
  KEY idx_customers_jenis_klien (jenis_klien),
  KEY idx_customers_layanan (layanan),
  KEY idx_customers_kategori (kategori),
  KEY idx_customers_upload_timestamp (upload_timestamp),
  KEY idx_customers_batch_id (batch_id),
  KEY idx_customers_file_hash (file_hash),
  KEY idx_customers_file_name (file_name),
  KEY idx_customers_upload_session_id (upload_session_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS vendors (
  id                           INT NOT NULL,
  name                         VARCHAR(255),
  description                  TEXT,
  contact_person               VARCHAR(255),
  email                        VARCHAR(255),
  phone                        VARCHAR(64),
  is_active                    TINYINT(1),
  created_at                   DATETIME(3),
  updated_at                   DATETIME(3),
  row_digest                   BIGINT GENERATED ALWAYS AS (CAST(CONV(LEFT(SHA2(CONCAT_WS(',',
      IFNULL(`id`, 'N'),
      IFNULL(CONCAT(LENGTH(`name`), ':', `name`), 'N'),
      IFNULL(CONCAT(LENGTH(`description`), ':', `description`), 'N'),
      IFNULL(CONCAT(LENGTH(`contact_person`), ':', `contact_person`), 'N'),
      IFNULL(CONCAT(LENGTH(`email`), ':', `email`), 'N'),
      IFNULL(CONCAT(LENGTH(`phone`), ':', `phone`), 'N'),
      IFNULL(`is_active`, 'N'),
      IFNULL(`created_at`, 'N'),
      IFNULL(`updated_at`, 'N')), 256), 15), 16, 10) AS SIGNED)) STORED INVISIBLE
                               COMMENT 'SHA-256 of the described columns, 60 bits, doubles as significand and exponent (etl/digest.py)',
  PRIMARY KEY (id),
  KEY idx_vendors_name (name),
  KEY idx_vendors_is_active (is_active),
  KEY idx_vendors_created_at (created_at),
  KEY idx_vendors_updated_at (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS upload_sessions (
  id                           VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
  file_name                    VARCHAR(255),
  file_hash                    VARCHAR(128),
  file_size                    BIGINT,
  upload_timestamp             BIGINT,
  record_count                 INT,
  success_count                INT,
  error_count                  INT,
  data_type                    VARCHAR(50),
  status                       VARCHAR(50),
  error_log                    MEDIUMTEXT,
  reconstructed                TINYINT(1) NOT NULL DEFAULT 0,
  created_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  row_digest                   BIGINT GENERATED ALWAYS AS (CAST(CONV(LEFT(SHA2(CONCAT_WS(',',
      IFNULL(CONCAT(LENGTH(`id`), ':', `id`), 'N'),
      IFNULL(CONCAT(LENGTH(`file_name`), ':', `file_name`), 'N'),
      IFNULL(CONCAT(LENGTH(`file_hash`), ':', `file_hash`), 'N'),
      IFNULL(`file_size`, 'N'),
      IFNULL(`upload_timestamp`, 'N'),
      IFNULL(`record_count`, 'N'),
      IFNULL(`success_count`, 'N'),
      IFNULL(`error_count`, 'N'),
      IFNULL(CONCAT(LENGTH(`data_type`), ':', `data_type`), 'N'),
      IFNULL(CONCAT(LENGTH(`status`), ':', `status`), 'N'),
      IFNULL(CONCAT(LENGTH(`error_log`), ':', `error_log`), 'N'),
      IFNULL(`reconstructed`, 'N')), 256), 15), 16, 10) AS SIGNED)) STORED INVISIBLE
                               COMMENT 'SHA-256 of the described columns, 60 bits, doubles as significand and exponent (etl/digest.py)',
  PRIMARY KEY (id),
  KEY idx_upload_sessions_file_name (file_name),
  KEY idx_upload_sessions_file_hash (file_hash),
  KEY idx_upload_sessions_upload_timestamp (upload_timestamp),
  KEY idx_upload_sessions_data_type (data_type),
  KEY idx_upload_sessions_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The app's backend owns users and menu_permissions (the browser's users, with their passwords, are
-- not migrated). They are created here only where the backend has not made them yet, with the
-- columns it reads: login selects by username where is_active, compares the bcrypt hash in
-- password and sets last_login. `etl schema apply` never drops, empties or narrows them, nor
-- touches their rows; `etl users add` creates the first admin (etl/mysql/users.py).
CREATE TABLE IF NOT EXISTS users (
  id                           INT NOT NULL AUTO_INCREMENT,
  username                     VARCHAR(255) NOT NULL,
  password                     VARCHAR(255) NOT NULL,  -- bcrypt hash ($2b$, cost >= 10)
  role                         VARCHAR(32) NOT NULL DEFAULT 'user',  -- 'super admin' | 'admin' | 'user'
  is_active                    BOOLEAN NOT NULL DEFAULT TRUE,
  last_login                   TIMESTAMP NULL DEFAULT NULL,
  created_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uq_users_username (username),
  KEY idx_users_role (role)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS menu_permissions (
  id                           INT NOT NULL AUTO_INCREMENT,
  role                         VARCHAR(32) NOT NULL,
  menus                        MEDIUMTEXT NOT NULL,  -- JSON array of the UI's menu titles, as displayed
  created_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uq_menu_permissions_role (role)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- ---------------------------------------------------------------- the migration's own tables

-- Cutover switches (dataSource, writeMode, ...): one row per flag, value as JSON text.
CREATE TABLE IF NOT EXISTS feature_flags (
  name                         VARCHAR(64) NOT NULL,
  value                        VARCHAR(255) NOT NULL,
  updated_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  updated_by                   VARCHAR(255),
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every flag change and every refused change (etl flags, the cutover guards), written in the
-- same transaction as the change itself, so neither exists without the other.
CREATE TABLE IF NOT EXISTS feature_flag_history (
  id                           BIGINT NOT NULL AUTO_INCREMENT,
  changed_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  actor                        VARCHAR(255) NOT NULL,   -- who: OS user@host, or the API token's name
  action                       VARCHAR(16) NOT NULL,    -- set | forced | refused | rollback
  from_stage                   VARCHAR(32),
  to_stage                     VARCHAR(32),
  changes                      TEXT NOT NULL,           -- JSON object: flag -> [from, to]
  reason                       TEXT,
  evidence                     MEDIUMTEXT,              -- JSON: each guard's name, verdict and figures
  PRIMARY KEY (id),
  KEY idx_feature_flag_history_changed_at (changed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Dual-read consistency as browsers report it (POST /api/migration/mismatches of `etl serve`),
-- read by `etl cutover status` and the cutover guards. One row per report: how many records a
-- browser compared and how many differed, so a mismatch rate has its denominator.
CREATE TABLE IF NOT EXISTS migration_read_checks (
  id                           BIGINT NOT NULL AUTO_INCREMENT,
  reported_at                  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  client_id                    VARCHAR(64) NOT NULL,    -- a browser's random id (kept in its localStorage)
  stage                        VARCHAR(32) NOT NULL,    -- the cutover stage the browser was in
  table_name                   VARCHAR(64) NOT NULL,
  compared                     INT NOT NULL,
  mismatched                   INT NOT NULL,
  PRIMARY KEY (id),
  KEY idx_migration_read_checks_table (table_name, reported_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Each differing record once per table and stage (a repeated report bumps times_seen), with the
-- business buckets it falls in, so `etl cutover status` can say where the differences are.
CREATE TABLE IF NOT EXISTS migration_mismatches (
  table_name                   VARCHAR(64) NOT NULL,
  record_key                   VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
  stage                        VARCHAR(32) NOT NULL,
  first_seen                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  last_seen                    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  times_seen                   INT NOT NULL DEFAULT 1,
  client_id                    VARCHAR(64) NOT NULL,    -- the first browser that reported it
  bucket_day                   DATE,
  bucket_cabang                VARCHAR(100),
  bucket_status                VARCHAR(50),
  bucket_category              VARCHAR(100),
  fields                       TEXT,                    -- JSON array of the differing field names
  PRIMARY KEY (table_name, record_key, stage),
  KEY idx_migration_mismatches_last_seen (last_seen)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The load ledger (etl/mysql/ledger.py): one row per chunk the loader plans. A chunk's rows and its
-- 'written' mark commit in one transaction; 'done' follows once the rows the server then
-- holds were read back and matched what was sent (count and checksum). A run that finds a
-- plan with chunks not done continues it.
CREATE TABLE IF NOT EXISTS etl_load_ledger (
  run_id                       CHAR(32) NOT NULL,     -- one plan: one table from one staged table
  chunk_no                     INT NOT NULL,
  table_name                   VARCHAR(64) NOT NULL,
  stage_id                     VARCHAR(64) NOT NULL,  -- fingerprint of the staged table's content
  kind                         VARCHAR(8) NOT NULL,   -- insert | update | delete
  key_from                     VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
  key_to                       VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
  row_count                    INT NOT NULL,          -- rows planned
  checksum                     VARCHAR(64) NOT NULL,  -- of the planned rows: count:sum of row hashes
  rows_sent                    INT,
  rows_written                 INT,                   -- affected rows the server reported
  rows_rejected                INT,                   -- refused by the server, in the rejects file
  server_checksum              VARCHAR(64),           -- what the server held when checked
  method                       VARCHAR(16),           -- load-data | insert
  status                       VARCHAR(16) NOT NULL,  -- planned | written | done | mismatch | abandoned
  attempts                     INT NOT NULL DEFAULT 0,
  planned_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  started_at                   DATETIME(3),
  written_at                   DATETIME(3),
  finished_at                  DATETIME(3),
  PRIMARY KEY (run_id, chunk_no),
  KEY idx_etl_load_ledger_table (table_name, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Secondary indexes the loader dropped for a bulk load into an empty table, recorded before
-- the DROP and cleared once rebuilt, so a run that dies in between is rebuilt by the next.
CREATE TABLE IF NOT EXISTS etl_load_indexes (
  table_name                   VARCHAR(64) NOT NULL,
  index_name                   VARCHAR(64) NOT NULL,
  position                     INT NOT NULL,          -- rebuilt in the order SHOW CREATE TABLE listed them
  definition                   TEXT NOT NULL,         -- as SHOW CREATE TABLE gave it: KEY `name` (`col`, ...)
  dropped_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (table_name, index_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Who holds the etl lock of this database (etl/mysql/lock.py): the lock itself is a MySQL named lock
-- (GET_LOCK), released by the server when its connection ends; this row only says who took it,
-- for the message the next comer gets. A row whose connection no longer holds the lock is stale.
CREATE TABLE IF NOT EXISTS etl_locks (
  lock_name                    VARCHAR(64) NOT NULL,
  connection_id                BIGINT NOT NULL,
  purpose                      VARCHAR(32) NOT NULL,  -- load | flags | ...
  holder                       VARCHAR(255) NOT NULL, -- the holding program: host and process id
  since                        DATETIME(3) NOT NULL,
  PRIMARY KEY (lock_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Audit trail written by the triggers below. The loader sets @etl_skip_audit = 1 for its own
-- bulk writes (which the load ledger records per chunk) so a million-row load does not
-- write a million audit rows; every other write is audited.
CREATE TABLE IF NOT EXISTS audit_log (
  id                           BIGINT NOT NULL AUTO_INCREMENT,
  table_name                   VARCHAR(64) NOT NULL,
  row_id                       VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
  action                       VARCHAR(8) NOT NULL,  -- insert | update | delete
  db_user                      VARCHAR(255),
  changed_at                   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY idx_audit_log_row (table_name, row_id),
  KEY idx_audit_log_changed_at (changed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- ---------------------------------------------------------------- triggers (audit trail)

DROP TRIGGER IF EXISTS trg_tickets_ai;
CREATE TRIGGER trg_tickets_ai AFTER INSERT ON tickets FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'tickets', NEW.id, 'insert', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;
DROP TRIGGER IF EXISTS trg_tickets_au;
CREATE TRIGGER trg_tickets_au AFTER UPDATE ON tickets FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'tickets', NEW.id, 'update', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;
DROP TRIGGER IF EXISTS trg_tickets_ad;
CREATE TRIGGER trg_tickets_ad AFTER DELETE ON tickets FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'tickets', OLD.id, 'delete', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;

DROP TRIGGER IF EXISTS trg_incidents_ai;
CREATE TRIGGER trg_incidents_ai AFTER INSERT ON incidents FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'incidents', NEW.id, 'insert', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;
DROP TRIGGER IF EXISTS trg_incidents_au;
CREATE TRIGGER trg_incidents_au AFTER UPDATE ON incidents FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'incidents', NEW.id, 'update', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;
DROP TRIGGER IF EXISTS trg_incidents_ad;
CREATE TRIGGER trg_incidents_ad AFTER DELETE ON incidents FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'incidents', OLD.id, 'delete', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;

DROP TRIGGER IF EXISTS trg_customers_ai;
CREATE TRIGGER trg_customers_ai AFTER INSERT ON customers FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'customers', NEW.id, 'insert', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;
DROP TRIGGER IF EXISTS trg_customers_au;
CREATE TRIGGER trg_customers_au AFTER UPDATE ON customers FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'customers', NEW.id, 'update', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;
DROP TRIGGER IF EXISTS trg_customers_ad;
CREATE TRIGGER trg_customers_ad AFTER DELETE ON customers FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'customers', OLD.id, 'delete', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;

DROP TRIGGER IF EXISTS trg_vendors_ai;
CREATE TRIGGER trg_vendors_ai AFTER INSERT ON vendors FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'vendors', NEW.id, 'insert', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;
DROP TRIGGER IF EXISTS trg_vendors_au;
CREATE TRIGGER trg_vendors_au AFTER UPDATE ON vendors FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'vendors', NEW.id, 'update', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;
DROP TRIGGER IF EXISTS trg_vendors_ad;
CREATE TRIGGER trg_vendors_ad AFTER DELETE ON vendors FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'vendors', OLD.id, 'delete', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;

DROP TRIGGER IF EXISTS trg_upload_sessions_ai;
CREATE TRIGGER trg_upload_sessions_ai AFTER INSERT ON upload_sessions FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'upload_sessions', NEW.id, 'insert', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;
DROP TRIGGER IF EXISTS trg_upload_sessions_au;
CREATE TRIGGER trg_upload_sessions_au AFTER UPDATE ON upload_sessions FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'upload_sessions', NEW.id, 'update', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;
DROP TRIGGER IF EXISTS trg_upload_sessions_ad;
CREATE TRIGGER trg_upload_sessions_ad AFTER DELETE ON upload_sessions FOR EACH ROW
  INSERT INTO audit_log (table_name, row_id, action, db_user)
  SELECT 'upload_sessions', OLD.id, 'delete', CURRENT_USER() FROM DUAL WHERE COALESCE(@etl_skip_audit, 0) = 0;

-- ---------------------------------------------------------------- views (the UI's aggregations)

CREATE OR REPLACE VIEW v_tickets_by_status AS
  SELECT status, COUNT(*) AS tickets FROM tickets GROUP BY status;

CREATE OR REPLACE VIEW v_tickets_by_category AS
  SELECT category, COUNT(*) AS tickets FROM tickets GROUP BY category;

CREATE OR REPLACE VIEW v_tickets_by_cabang AS
  SELECT cabang, COUNT(*) AS tickets FROM tickets GROUP BY cabang;

CREATE OR REPLACE VIEW v_tickets_by_month AS
  SELECT DATE_FORMAT(open_time, '%Y-%m') AS month, COUNT(*) AS tickets
  FROM tickets GROUP BY DATE_FORMAT(open_time, '%Y-%m');

-- SLA bands: of the closed tickets, how many were resolved within 4, 8 and 24 hours.
CREATE OR REPLACE VIEW v_ticket_sla AS
  SELECT COUNT(*) AS tickets,
         SUM(close_time IS NOT NULL) AS closed,
         SUM(sla_4h = 1) AS within_4h,
         SUM(sla_8h = 1) AS within_8h,
         SUM(sla_24h = 1) AS within_24h,
         ROUND(100 * SUM(sla_4h = 1) / NULLIF(SUM(close_time IS NOT NULL), 0), 2) AS pct_4h,
         ROUND(100 * SUM(sla_8h = 1) / NULLIF(SUM(close_time IS NOT NULL), 0), 2) AS pct_8h,
         ROUND(100 * SUM(sla_24h = 1) / NULLIF(SUM(close_time IS NOT NULL), 0), 2) AS pct_24h
  FROM tickets;

CREATE OR REPLACE VIEW v_ticket_sla_by_cabang AS
  SELECT cabang,
         COUNT(*) AS tickets,
         SUM(close_time IS NOT NULL) AS closed,
         SUM(sla_4h = 1) AS within_4h,
         SUM(sla_8h = 1) AS within_8h,
         SUM(sla_24h = 1) AS within_24h,
         ROUND(100 * SUM(sla_4h = 1) / NULLIF(SUM(close_time IS NOT NULL), 0), 2) AS pct_4h,
         ROUND(100 * SUM(sla_8h = 1) / NULLIF(SUM(close_time IS NOT NULL), 0), 2) AS pct_8h,
         ROUND(100 * SUM(sla_24h = 1) / NULLIF(SUM(close_time IS NOT NULL), 0), 2) AS pct_24h
  FROM tickets GROUP BY cabang;

-- Incident minutes are summed exactly: v_incident_minutes casts each DOUBLE to DECIMAL(65,30)
-- (both servers convert a double through its shortest decimal text), and DECIMAL sums do not
-- depend on the order the rows are added in, so a total is the same on MySQL, MariaDB and the
-- source side (etl/check/aggregates.py) to the last digit. A SUM of the doubles themselves is
-- not: its last bits follow the order of the additions, and a rounded comparison breaks at a
-- rounding boundary.
CREATE OR REPLACE VIEW v_incident_minutes AS
  SELECT status, priority, site,
         CAST(duration_min AS DECIMAL(65,30)) AS duration_min,
         CAST(net_duration_min AS DECIMAL(65,30)) AS net_duration_min,
         CAST(total_duration_pause_min AS DECIMAL(65,30)) AS total_duration_pause_min,
         CAST(total_duration_vendor_min AS DECIMAL(65,30)) AS total_duration_vendor_min
  FROM incidents;

CREATE OR REPLACE VIEW v_incidents_by_status AS
  SELECT status, COUNT(*) AS incidents,
         SUM(duration_min) AS total_duration_min, AVG(duration_min) AS avg_duration_min,
         SUM(net_duration_min) AS total_net_duration_min, AVG(net_duration_min) AS avg_net_duration_min,
         SUM(total_duration_pause_min) AS total_pause_min, SUM(total_duration_vendor_min) AS total_vendor_min
  FROM v_incident_minutes GROUP BY status;

CREATE OR REPLACE VIEW v_incidents_by_priority AS
  SELECT priority, COUNT(*) AS incidents,
         SUM(duration_min) AS total_duration_min, AVG(duration_min) AS avg_duration_min,
         SUM(net_duration_min) AS total_net_duration_min, AVG(net_duration_min) AS avg_net_duration_min,
         SUM(total_duration_pause_min) AS total_pause_min, SUM(total_duration_vendor_min) AS total_vendor_min
  FROM v_incident_minutes GROUP BY priority;

CREATE OR REPLACE VIEW v_incidents_by_site AS
  SELECT site, COUNT(*) AS incidents,
         SUM(duration_min) AS total_duration_min, AVG(duration_min) AS avg_duration_min,
         SUM(net_duration_min) AS total_net_duration_min, AVG(net_duration_min) AS avg_net_duration_min,
         SUM(total_duration_pause_min) AS total_pause_min, SUM(total_duration_vendor_min) AS total_vendor_min
  FROM v_incident_minutes GROUP BY site;

CREATE OR REPLACE VIEW v_customers_by_jenis_klien AS
  SELECT jenis_klien, COUNT(*) AS customers FROM customers GROUP BY jenis_klien;

CREATE OR REPLACE VIEW v_customers_by_layanan AS
  SELECT layanan, COUNT(*) AS customers FROM customers GROUP BY layanan;

CREATE OR REPLACE VIEW v_customers_by_kategori AS
  SELECT kategori, COUNT(*) AS customers FROM customers GROUP BY kategori;

CREATE OR REPLACE VIEW v_upload_session_summary AS
  SELECT data_type, status, COUNT(*) AS sessions, SUM(reconstructed) AS reconstructed,
         SUM(record_count) AS records, SUM(success_count) AS successes, SUM(error_count) AS errors,
         MIN(upload_timestamp) AS first_upload_ms, MAX(upload_timestamp) AS last_upload_ms
  FROM upload_sessions GROUP BY data_type, status;

-- ---------------------------------------------------------------- stored procedures

DROP PROCEDURE IF EXISTS sp_finalize_upload_session;
DELIMITER $$
-- Mark one upload session completed, with record and success counts equal to the rows that carry its id.
CREATE PROCEDURE sp_finalize_upload_session(IN p_session_id VARCHAR(255))
BEGIN
  -- Routine parameters take the database's default collation; the explicit COLLATEs
  -- below keep the comparisons valid whatever that default is.
  DECLARE n INT DEFAULT 0;
  SELECT (SELECT COUNT(*) FROM tickets WHERE upload_session_id = p_session_id COLLATE utf8mb4_unicode_ci)
       + (SELECT COUNT(*) FROM incidents WHERE upload_session_id = p_session_id COLLATE utf8mb4_unicode_ci)
       + (SELECT COUNT(*) FROM customers WHERE upload_session_id = p_session_id COLLATE utf8mb4_unicode_ci)
    INTO n;
  UPDATE upload_sessions
     SET record_count = n, success_count = n, status = 'completed'
   WHERE id = p_session_id COLLATE utf8mb4_bin;
  SELECT p_session_id AS session_id, n AS records;
END$$
DELIMITER ;

DROP PROCEDURE IF EXISTS sp_delete_batch;
DELIMITER $$
-- Delete every record of one upload batch, in one transaction, and mark its session deleted.
CREATE PROCEDURE sp_delete_batch(IN p_batch_id VARCHAR(255))
BEGIN
  DECLARE n_tickets, n_incidents, n_customers INT DEFAULT 0;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
  START TRANSACTION;
  DELETE FROM tickets WHERE batch_id = p_batch_id COLLATE utf8mb4_unicode_ci;
  SET n_tickets = ROW_COUNT();
  DELETE FROM incidents WHERE batch_id = p_batch_id COLLATE utf8mb4_unicode_ci;
  SET n_incidents = ROW_COUNT();
  DELETE FROM customers WHERE batch_id = p_batch_id COLLATE utf8mb4_unicode_ci;
  SET n_customers = ROW_COUNT();
  UPDATE upload_sessions SET status = 'deleted' WHERE id = p_batch_id COLLATE utf8mb4_bin;
  COMMIT;
  SELECT p_batch_id AS batch_id, n_tickets AS tickets, n_incidents AS incidents, n_customers AS customers;
END$$
DELIMITER ;

-- ---------------------------------------------------------------- initial rows

-- One row per role with the UI's menu titles (the sidebar shows only titles it knows), inserted
-- only for a role that has no row yet: the backend's own rows are never touched, and its table
-- need not have a unique key on role for this to add nothing twice.
INSERT INTO menu_permissions (role, menus)
  SELECT 'super admin', '["Dashboard","Data Grid","Customer Analytics","Ticket Analytics","Agent Analytics","Upload Data","Master Data Agent","Rumus Analytics","Admin Panel"]'
  FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM menu_permissions WHERE role = 'super admin');
INSERT INTO menu_permissions (role, menus)
  SELECT 'admin', '["Dashboard","Data Grid","Customer Analytics","Ticket Analytics","Agent Analytics","Upload Data","Master Data Agent","Rumus Analytics"]'
  FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM menu_permissions WHERE role = 'admin');
INSERT INTO menu_permissions (role, menus)
  SELECT 'user', '["Dashboard","Data Grid","Customer Analytics","Ticket Analytics","Agent Analytics","Rumus Analytics"]'
  FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM menu_permissions WHERE role = 'user');

INSERT IGNORE INTO feature_flags (name, value, updated_by) VALUES
  ('dataSource', '"indexeddb"', 'schema'),
  ('writeMode', '"indexeddb-only"', 'schema'),
  ('migrationMode', 'false', 'schema'),
  ('debugMode', 'false', 'schema'),
  ('performanceMonitoring', 'false', 'schema'),
  ('rollbackMode', 'false', 'schema');
