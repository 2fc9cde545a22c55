/**
 * Logging setup. Logs go to stderr (stdout carries `status` output and the
 * dry-run plan), as text or JSON lines, through @logtape/logtape.
 *
 * @module
 */

import { configureSync, getLogger, type Logger, type LogRecord, resetSync } from "@logtape/logtape";
import type { LogFormat } from "./options.ts";

const encoder = new TextEncoder();

/** Configure logging: `verbosity` 0 logs info and up, 1 and more also debug. */
export function setupLogging(format: LogFormat, verbosity: number): void {
  const formatter = format === "json" ? formatJson : formatText;
  resetSync();
  configureSync({
    reset: true,
    sinks: {
      stderr: (record: LogRecord) => {
        Deno.stderr.writeSync(encoder.encode(formatter(record)));
      },
    },
    loggers: [
      {
        category: ["ha-controller"],
        lowestLevel: verbosity > 0 ? "debug" : "info",
        sinks: ["stderr"],
      },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

const levelNames: Record<string, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARN",
  error: "ERROR",
  fatal: "FATAL",
};

function splitProperties(record: LogRecord): { message: string; fields: Record<string, unknown> } {
  const { message, ...fields } = record.properties as Record<string, unknown>;
  return {
    message: typeof message === "string" ? message : String(record.message.join("")),
    fields,
  };
}

/** `2026-11-25T02:59:00.123Z INFO  loop: message key=value` */
function formatText(record: LogRecord): string {
  const { message, fields } = splitProperties(record);
  const extra = Object.entries(fields)
    .map(([k, v]) => ` ${k}=${typeof v === "string" && !/\s/.test(v) ? v : JSON.stringify(v)}`)
    .join("");
  const level = (levelNames[record.level] ?? record.level).padEnd(5);
  return `${new Date(record.timestamp).toISOString()} ${level} ${
    record.category.slice(1).join(".")
  }: ${message}${extra}\n`;
}

/** One JSON object per line: time, level, logger, msg and the fields. */
function formatJson(record: LogRecord): string {
  const { message, fields } = splitProperties(record);
  return JSON.stringify({
    time: new Date(record.timestamp).toISOString(),
    level: levelNames[record.level] ?? record.level,
    logger: record.category.join("."),
    msg: message,
    ...fields,
  }) + "\n";
}

/** A small logger: one rendered line per call, optional structured fields. */
export interface Log {
  /** Debug detail (shown with --v 1 and more). */
  debug(message: string, fields?: Record<string, unknown>): void;
  /** Normal operation. */
  info(message: string, fields?: Record<string, unknown>): void;
  /** Something is wrong but the agent copes. */
  warn(message: string, fields?: Record<string, unknown>): void;
  /** Something failed. */
  error(message: string, fields?: Record<string, unknown>): void;
}

/** A logger below the `ha-controller` category, e.g. `logger("loop")`. */
export function logger(name: string): Log {
  const log: Logger = getLogger(["ha-controller", name]);
  // The message is passed as a property so braces in it are never taken
  // for placeholders.
  return {
    debug: (message, fields) => log.debug("{message}", { ...fields, message }),
    info: (message, fields) => log.info("{message}", { ...fields, message }),
    warn: (message, fields) => log.warn("{message}", { ...fields, message }),
    error: (message, fields) => log.error("{message}", { ...fields, message }),
  };
}
