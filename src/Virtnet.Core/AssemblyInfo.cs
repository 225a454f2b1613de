using System.Runtime.CompilerServices;

// Every native call takes blittable arguments only: no hidden marshalling, AOT-clean.
[assembly: DisableRuntimeMarshalling]
