import { Link } from "react-router";

export function NotFound() {
  return (
    <div className="grid gap-2">
      <h1 className="text-2xl font-semibold">Not found</h1>
      <p className="text-muted-foreground">
        There is no page here. <Link className="underline" to="/apps">Back to the apps</Link>.
      </p>
    </div>
  );
}
