import { useState } from "react";
import { Input } from "@/components/ui/input";
import { Button } from "@/components/ui/button";
import { cn } from "@/lib/utils";

/** A password field with a Show/Hide button: what it holds is a secret (a URL with a
 * receiver's token in it, a signing secret, a password), so it is hidden unless asked. The
 * field takes the props `Field` hands its control (`id`, `aria-*`). */
export function SecretInput({
  showLabel,
  className,
  ...props
}: React.InputHTMLAttributes<HTMLInputElement> & { showLabel: string }) {
  const [shown, setShown] = useState(false);
  return (
    <div className="flex gap-2">
      <Input
        {...props}
        type={shown ? "text" : "password"}
        autoComplete="new-password"
        autoCapitalize="off"
        spellCheck={false}
        className={cn("font-mono", className)}
      />
      <Button type="button" variant="outline" onClick={() => setShown((s) => !s)} className="w-16 shrink-0">
        {shown ? "Hide" : "Show"}
        <span className="sr-only"> {showLabel}</span>
      </Button>
    </div>
  );
}
