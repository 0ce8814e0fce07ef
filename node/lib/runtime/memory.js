'use strict';
// Resident memory as Linux reports it in /proc/<pid>/status: the one place
// Node reads a process's peak (VmHWM). Not getrusage's maxRSS
// (process.resourceUsage().maxRSS): on Linux it is inherited across exec, so
// a worker Python started would report the Python parent's peak.
const fs = require('fs');

/** A `Name:  N kB` field of a status file, in bytes, or null when absent. */
function statusBytes(status, field) {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return m ? Number(m[1]) * 1024 : null;
}

/**
 * {peak_rss, rss} of process `pid` (this one by default), in bytes: VmHWM and
 * VmRSS, null for a field the kernel does not report. Throws when the status
 * cannot be read (the process is gone, or this is not Linux).
 */
function residentMemory(pid = 'self') {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return { peak_rss: statusBytes(status, 'VmHWM'), rss: statusBytes(status, 'VmRSS') };
}

module.exports = { residentMemory };
