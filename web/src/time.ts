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
