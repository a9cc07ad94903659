import type { SelectHTMLAttributes } from "react";
import { useDestinations } from "@/lib/databases";
import { Select } from "@/components/ui/select";

/** Where a backup goes: `local` (a file on this machine) or one of the S3 destinations. */
export function DestinationSelect(props: SelectHTMLAttributes<HTMLSelectElement>) {
  const destinations = useDestinations();
  const list = destinations.data ?? [{ name: "local", kind: "local" }];
  return (
    <Select {...props}>
      {list.map((d) => (
        <option key={d.name} value={d.name}>
          {d.kind === "s3" ? `${d.name} (S3 ${d.bucket ?? ""})` : `${d.name} (this machine)`}
        </option>
      ))}
    </Select>
  );
}
