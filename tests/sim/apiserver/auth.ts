/**
 * Authentication of the simulated API server: who a bearer token is.
 *
 * The admin token (the one in `server.kubeconfigPath`) is a superuser in the
 * `system:masters` group, as a cluster's admin kubeconfig is. Tokens issued
 * for a ServiceAccount authenticate as `system:serviceaccount:<ns>:<name>`
 * with the groups the real token authenticator adds; they stop working when
 * the ServiceAccount is deleted, as bound tokens do. Tokens for arbitrary
 * users exist for tests of User and Group subjects.
 *
 * @module
 */

/** The identity of a request, as the authorizer sees it. */
export interface UserInfo {
  /** User name, e.g. `system:serviceaccount:ha:ha-controller`. */
  username: string;
  /** Groups, e.g. `system:serviceaccounts` and `system:authenticated`. */
  groups: string[];
}

/** The group whose members every authorizer lets through. */
export const superuserGroup = "system:masters";

/** The group every authenticated user is in. */
export const authenticatedGroup = "system:authenticated";

/** The group of requests without credentials. */
export const unauthenticatedGroup = "system:unauthenticated";

/** The user of the admin token. */
export const adminUser: UserInfo = {
  username: "kubernetes-admin",
  groups: [superuserGroup, authenticatedGroup],
};

/** The user of a request without a token on a path that needs none. */
export const anonymousUser: UserInfo = {
  username: "system:anonymous",
  groups: [unauthenticatedGroup],
};

const serviceAccountPrefix = "system:serviceaccount:";

/** A ServiceAccount, by namespace and name. */
export interface ServiceAccountRef {
  /** Namespace of the ServiceAccount. */
  namespace: string;
  /** Name of the ServiceAccount. */
  name: string;
}

/** The user a ServiceAccount token authenticates as. */
export function serviceAccountUser(account: ServiceAccountRef): UserInfo {
  return {
    username: `${serviceAccountPrefix}${account.namespace}:${account.name}`,
    groups: [
      "system:serviceaccounts",
      `system:serviceaccounts:${account.namespace}`,
      authenticatedGroup,
    ],
  };
}

/** The ServiceAccount behind a user name, or undefined for other users. */
export function serviceAccountOf(username: string): ServiceAccountRef | undefined {
  if (!username.startsWith(serviceAccountPrefix)) return undefined;
  const rest = username.slice(serviceAccountPrefix.length).split(":");
  if (rest.length !== 2 || rest[0] === "" || rest[1] === "") return undefined;
  return { namespace: rest[0], name: rest[1] };
}

/** Whether the user bypasses authorization (member of `system:masters`). */
export function isSuperuser(user: UserInfo): boolean {
  return user.groups.includes(superuserGroup);
}

/** Issued tokens and the users they stand for. */
export class TokenBook {
  #tokens = new Map<string, UserInfo>();

  /** Records the admin token. */
  constructor(adminToken: string) {
    this.#tokens.set(adminToken, adminUser);
  }

  /** Issues a new random token for `user`; earlier tokens of the user stay valid. */
  issue(user: UserInfo): string {
    const token = `sim-${crypto.randomUUID().replaceAll("-", "")}`;
    this.#tokens.set(token, { username: user.username, groups: [...user.groups] });
    return token;
  }

  /** The user of a token, or undefined for an unknown one. */
  lookup(token: string): UserInfo | undefined {
    const user = this.#tokens.get(token);
    return user === undefined ? undefined : { username: user.username, groups: [...user.groups] };
  }
}
