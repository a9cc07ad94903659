import { Alert } from "@/components/ui/alert";
import { CopyButton } from "@/components/CopyButton";

/** A secret shown this once (a new token, a webhook secret), with a copy button. */
export function SecretOnce({ title, secret, text }: { title: string; secret: string; text: string }) {
  return (
    <Alert variant="success" className="grid gap-2">
      <strong className="text-sm">{title}</strong>
      <p className="text-sm">{text}</p>
      <div className="flex flex-wrap items-center gap-2">
        <code className="break-all rounded bg-muted px-2 py-1 font-mono text-xs" data-testid="secret">
          {secret}
        </code>
        <CopyButton text={secret} />
      </div>
    </Alert>
  );
}
