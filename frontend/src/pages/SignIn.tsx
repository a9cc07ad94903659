import { useState } from "react";
import { useNavigate, useSearchParams } from "react-router";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, type Session } from "@/lib/api";
import { Button } from "@/components/ui/button";
import { Input } from "@/components/ui/input";
import { Field } from "@/components/ui/field";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";

/** Exchanges a pasted token for a session cookie. The token is sent once and kept nowhere
 * in the browser. */
export function SignIn() {
  const [token, setToken] = useState("");
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const client = useQueryClient();
  const signIn = useMutation({
    mutationFn: (t: string) => api<Session>("POST", "/api/session", { token: t }),
    onSuccess: (s) => {
      setToken("");
      client.setQueryData(["session"], s);
      const next = params.get("next");
      navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/apps", { replace: true });
    },
  });
  const error =
    signIn.error instanceof ApiError
      ? signIn.error.status === 429
        ? `${signIn.error.message}.`
        : "That token is not valid. Paste an API token, such as the one in the state directory's initial-admin-token file."
      : signIn.error
        ? String(signIn.error)
        : undefined;
  return (
    <main className="flex min-h-screen items-center justify-center p-4">
      <Card className="w-full max-w-md">
        <CardHeader>
          <h1 className="flex items-center gap-2 text-xl font-semibold">
            <img src="/favicon.svg" alt="" className="h-7 w-7" /> Rivetr
          </h1>
          <CardTitle>Sign in</CardTitle>
          <CardDescription>
            Paste an API token. On a new installation, the first one is in <code>initial-admin-token</code> in Rivetr's state
            directory.
          </CardDescription>
        </CardHeader>
        <CardContent>
          <form
            className="grid gap-4"
            onSubmit={(e) => {
              e.preventDefault();
              signIn.mutate(token.trim());
            }}
          >
            <Field id="token" label="API token" error={error}>
              <Input
                type="password"
                autoComplete="off"
                spellCheck={false}
                placeholder="rvt_…"
                value={token}
                onChange={(e) => setToken(e.target.value)}
                required
              />
            </Field>
            <Button type="submit" disabled={signIn.isPending || !token.trim()}>
              {signIn.isPending ? "Signing in…" : "Sign in"}
            </Button>
          </form>
        </CardContent>
      </Card>
    </main>
  );
}
