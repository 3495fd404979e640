// "just now", "5 min ago", "yesterday", then a date: relative times that the dashboard refreshes every 30 s.
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const STEPS: [Intl.RelativeTimeFormatUnit, number][] = [
  ["minute", 60],
  ["hour", 3600],
  ["day", 86400],
];

export function relativeTime(iso: string, now = Date.now()): string {
  const seconds = (new Date(iso).getTime() - now) / 1000;
  const elapsed = Math.abs(seconds);
  if (elapsed < 45) return "just now";
  if (elapsed >= 7 * 86400) return absolute.format(new Date(iso));
  let unit: [Intl.RelativeTimeFormatUnit, number] = STEPS[0]!;
  for (const step of STEPS) if (elapsed >= step[1]) unit = step;
  return relative.format(Math.round(seconds / unit[1]), unit[0]);
}

export function fullTime(iso: string): string {
  return absolute.format(new Date(iso));
}

/** A time a notification may be snoozed until, as the menu offers it, computed in the user's own time zone. */
export interface SnoozePreset {
  label: string;
  until: (now: Date) => Date;
}

function atNine(now: Date, daysAhead: number): Date {
  const day = new Date(now);
  day.setDate(day.getDate() + daysAhead);
  day.setHours(9, 0, 0, 0);
  return day;
}

export const SNOOZE_PRESETS: readonly SnoozePreset[] = [
  { label: "1 hour", until: (now) => new Date(now.getTime() + 3_600_000) },
  { label: "3 hours", until: (now) => new Date(now.getTime() + 3 * 3_600_000) },
  { label: "Tomorrow 9:00", until: (now) => atNine(now, 1) },
  // Monday 9:00, a week ahead at most (on a Monday: the next one).
  { label: "Next week", until: (now) => atNine(now, (8 - now.getDay()) % 7 || 7) },
];
