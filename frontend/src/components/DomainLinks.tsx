import { cn } from "@/lib/utils";

/** An app's domains as links that open the app in a new tab. */
export function DomainLinks({
  domains,
  truncate = false,
  className,
}: {
  domains: readonly string[];
  truncate?: boolean;
  className?: string;
}) {
  return (
    <ul className={cn("grid gap-0.5", className)}>
      {domains.map((d) => (
        <li key={d} className={truncate ? "truncate" : undefined}>
          <a className="text-primary underline-offset-4 hover:underline" href={`//${d}`} target="_blank" rel="noreferrer">
            {d}
          </a>
        </li>
      ))}
    </ul>
  );
}
