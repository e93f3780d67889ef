// Sign-in and registration. Signing in asks girok for the session cookie (`useCookie: true`):
// the browser keeps it (HttpOnly) and the app never holds a token.

import { useState } from 'preact/hooks';
import { ApiError, gql } from '../api';
import { ME_FIELDS, begin, type Me } from '../session';
import { ErrorLine, useAction } from '../ui';

async function signIn(username: string, password: string): Promise<void> {
  const { login } = await gql<{ login: { user: Me } }>(
    `mutation($u: String!, $p: String!) { login(username: $u, password: $p, useCookie: true) { user { ${ME_FIELDS} } } }`,
    { u: username, p: password },
  );
  // The cookies are Secure unless auth.secure_cookies is off: a browser keeps them over HTTPS
  // and on loopback only. Say so rather than failing at the next request.
  if (!document.cookie.split('; ').some((pair) => pair.startsWith('girok_csrf='))) {
    throw new ApiError(
      'COOKIE_REFUSED',
      'The browser did not keep the session cookie: open girok over HTTPS (or on 127.0.0.1), or set auth.secure_cookies = false for plain HTTP on a private network',
    );
  }
  await begin(login.user);
}

function Field(props: { label: string; name: string; type?: 'text' | 'password' | 'email'; value: string; set: (value: string) => void; autocomplete: string; hint?: string }) {
  const id = `field-${props.name}`;
  return (
    <p class="field">
      <label for={id}>{props.label}</label>
      <input
        id={id}
        name={props.name}
        type={(props.type ?? 'text') as 'text'}
        value={props.value}
        autoComplete={props.autocomplete}
        required
        aria-describedby={props.hint ? `${id}-hint` : undefined}
        onInput={(event) => props.set(event.currentTarget.value)}
      />
      {props.hint && (
        <small id={`${id}-hint`} class="muted">
          {props.hint}
        </small>
      )}
    </p>
  );
}

export function SignIn() {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const { run: submit, busy, error } = useAction(() => signIn(username, password), true);
  return (
    <main class="narrow">
      <h1>Sign in to girok</h1>
      <form onSubmit={submit}>
        <Field label="Username or email" name="username" value={username} set={setUsername} autocomplete="username" />
        <Field label="Password" name="password" type="password" value={password} set={setPassword} autocomplete="current-password" />
        <ErrorLine error={error} />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
      <p>
        New here? <a href="/register">Create an account</a>
      </p>
    </main>
  );
}

export function Register() {
  const [username, setUsername] = useState('');
  const [email, setEmail] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [password, setPassword] = useState('');
  const { run: submit, busy, error } = useAction(async () => {
    await gql(
      'mutation($u: String!, $e: String!, $p: String!, $d: String!) { register(username: $u, email: $e, password: $p, displayName: $d) { id } }',
      { u: username, e: email, p: password, d: displayName },
    );
    await signIn(username, password);
  }, true);
  return (
    <main class="narrow">
      <h1>Create your girok account</h1>
      <form onSubmit={submit}>
        <Field label="Username" name="username" value={username} set={setUsername} autocomplete="username" hint="3–30 letters, digits or _" />
        <Field label="Display name" name="displayName" value={displayName} set={setDisplayName} autocomplete="name" />
        <Field label="Email" name="email" type="email" value={email} set={setEmail} autocomplete="email" />
        <Field label="Password" name="password" type="password" value={password} set={setPassword} autocomplete="new-password" hint="At least 8 characters" />
        <ErrorLine error={error} />
        <button type="submit" disabled={busy}>
          Create account
        </button>
      </form>
      <p>
        Already have one? <a href="/signin">Sign in</a>
      </p>
    </main>
  );
}
